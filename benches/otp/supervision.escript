#!/usr/bin/env escript
%% -*- erlang -*-
%%! +S 2:2
%% The three supervision measurements of benches/supervision.rs, for Erlang/OTP
%% on the same machine:
%%   restart_one_for_one: crash of a permanent gen_server -> restarted child in
%%     init/1 (fresh supervisor every 10 restarts, as ../shared/peers/otp);
%%   dynamic_temporary_start_exit: supervisor:start_child/2 of a temporary
%%     simple_one_for_one child that stops at once, waiting for its 'DOWN';
%%   stop_10000_children: exit(Sup, shutdown) of a simple_one_for_one
%%     supervisor with 10,000 gen_server children, until its 'DOWN'.
%% Logger off. Usage: escript benches/otp/supervision.escript [Cycles]
-mode(compile).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2, code_change/3]).

main(Args) ->
    N = case Args of [C | _] -> list_to_integer(C); [] -> 100000 end,
    ok = logger:set_primary_config(level, none),
    process_flag(trap_exit, true),
    io:format("otp_release=~s schedulers=~b~n",
              [erlang:system_info(otp_release), erlang:system_info(schedulers_online)]),
    _ = restart(2000),
    R = restart(N),
    io:format("restart_one_for_one avg_us=~.3f~n", [R / N / 1000]),
    {ok, Dyn} = supervisor:start_link(?MODULE, {dyn, temporary}),
    _ = start_exit(Dyn, 2000),
    S = start_exit(Dyn, N),
    stop_sup(Dyn),
    io:format("dynamic_temporary_start_exit avg_us=~.3f per_s=~b~n", [S / N / 1000, round(N / (S / 1.0e9))]),
    Stops = [stop_many(10000) || _ <- lists:seq(1, 10)],
    io:format("stop_10000_children avg_ms=~.3f runs_ms=~p~n",
              [lists:sum(Stops) / length(Stops) / 1.0e6, [round(X / 1000) / 1000 || X <- Stops]]).

restart(N) -> restart(N, 0).
restart(Left, Acc) when Left =< 0 -> Acc;
restart(Left, Acc) ->
    K = min(Left, 10),
    {ok, Sup} = supervisor:start_link(?MODULE, {sup, self(), K + 10}),
    P0 = receive {started, P} -> P end,
    T0 = erlang:monotonic_time(nanosecond),
    _ = cycles(K, P0),
    T1 = erlang:monotonic_time(nanosecond),
    stop_sup(Sup),
    restart(Left - K, Acc + (T1 - T0)).

cycles(0, P) -> P;
cycles(N, P) ->
    gen_server:cast(P, crash),
    receive {started, New} when New =/= P -> cycles(N - 1, New) end.

start_exit(Sup, N) ->
    T0 = erlang:monotonic_time(nanosecond),
    start_exit_loop(Sup, N),
    erlang:monotonic_time(nanosecond) - T0.

start_exit_loop(_, 0) -> ok;
start_exit_loop(Sup, N) ->
    {ok, Pid} = supervisor:start_child(Sup, []),
    Ref = erlang:monitor(process, Pid),
    receive {'DOWN', Ref, process, Pid, _} -> ok end,
    start_exit_loop(Sup, N - 1).

stop_many(N) ->
    {ok, Sup} = supervisor:start_link(?MODULE, {dyn, permanent_idle}),
    [{ok, _} = supervisor:start_child(Sup, []) || _ <- lists:seq(1, N)],
    T0 = erlang:monotonic_time(nanosecond),
    stop_sup(Sup),
    erlang:monotonic_time(nanosecond) - T0.

stop_sup(Sup) ->
    unlink(Sup),
    Ref = erlang:monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Ref, process, Sup, _} -> ok end,
    flush().

flush() -> receive _ -> flush() after 0 -> ok end.

init({sup, Parent, Intensity}) ->
    {ok, {#{strategy => one_for_one, intensity => Intensity, period => 1},
          [#{id => worker, start => {gen_server, start_link, [?MODULE, {crasher, Parent}, []]},
             restart => permanent, shutdown => 5000}]}};
init({dyn, temporary}) ->
    {ok, {#{strategy => simple_one_for_one},
          [#{id => brief, start => {gen_server, start_link, [?MODULE, brief, []]},
             restart => temporary, shutdown => 5000}]}};
init({dyn, permanent_idle}) ->
    {ok, {#{strategy => simple_one_for_one},
          [#{id => idle, start => {gen_server, start_link, [?MODULE, idle, []]},
             restart => permanent, shutdown => 5000}]}};
init({crasher, Parent}) ->
    Parent ! {started, self()},
    {ok, Parent};
init(brief) ->
    {ok, brief, 0};
init(idle) ->
    {ok, idle}.

handle_call(_, _, S) -> {reply, ok, S}.
handle_cast(crash, S) -> {stop, crashed, S};
handle_cast(_, S) -> {noreply, S}.
handle_info(timeout, brief) -> {stop, normal, brief};
handle_info(_, S) -> {noreply, S}.
terminate(_, _) -> ok.
code_change(_, S, _) -> {ok, S}.
