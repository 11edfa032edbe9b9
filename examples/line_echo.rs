//! A protocol of your own, with nothing but corral's public API: a line echo
//! server. Each TCP connection gets its own supervised actor; a connection
//! that sends `panic` crashes only itself; `shout <text>` makes the server
//! push `<TEXT>` to every connection (messages from the rest of the node
//! arrive in the connection's inbox).
//!
//! Run with `cargo run --example line_echo`: it starts the server, talks to
//! it as two clients, and stops.

use corral::async_trait;
use corral::listener::{Connection, ConnectionRef, ListenerSpec, Protocol, ProtocolError, Socket};
use corral::supervisor::{Supervisor, SupervisorSpec};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Echoes lines; broadcasts `shout` to every connection.
#[derive(Default)]
struct LineEcho {
    everyone: Arc<Mutex<Vec<ConnectionRef<String>>>>,
}

#[async_trait]
impl Protocol for LineEcho {
    type Msg = String;

    async fn serve(&self, conn: Connection<String>) -> Result<(), ProtocolError> {
        let everyone = self.everyone.clone();
        async move {
            if let Ok(mut all) = everyone.lock() {
                all.retain(|c| !c.is_closed());
                all.push(conn.handle());
            }
            let (socket, mut inbox, draining) = conn.into_parts();
            // Any byte stream: TCP here, TLS on a `ListenerSpec::tls` listener.
            let Some(Ok(stream)) = socket.map(Socket::into_byte_stream) else {
                return Ok(());
            };
            let (reader, mut writer) = tokio::io::split(stream);
            let mut lines = BufReader::new(reader).lines();
            loop {
                tokio::select! {
                    line = lines.next_line() => {
                        let Some(line) = line? else { return Ok(()) };
                        if line == "panic" {
                            panic!("asked to panic");
                        } else if let Some(text) = line.strip_prefix("shout ") {
                            let all = everyone.lock().map(|a| a.clone()).unwrap_or_default();
                            for c in all {
                                let _ = c.try_send(text.to_uppercase());
                            }
                        } else {
                            writer.write_all(format!("{line}\n").as_bytes()).await?;
                        }
                    }
                    Some(pushed) = inbox.recv() => {
                        writer.write_all(format!("{pushed}\n").as_bytes()).await?;
                    }
                    _ = draining.cancelled() => {
                        writer.write_all(b"bye\n").await?;
                        return Ok(());
                    }
                }
            }
        }
        .await
    }
}

async fn read_line(lines: &mut tokio::io::Lines<BufReader<TcpStream>>) -> String {
    lines.next_line().await.ok().flatten().unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listener_sup, listener) = ListenerSpec::tcp("echo", "127.0.0.1:0", LineEcho::default())
        .max_connections(100)
        .build();
    let root = Supervisor::start(SupervisorSpec::new("line_echo").child(listener_sup)).await?;
    let addr = listener.local_addr().ok_or("listener not bound")?;
    println!("listening on {addr}");

    let mut a = BufReader::new(TcpStream::connect(addr).await?).lines();
    let mut b = BufReader::new(TcpStream::connect(addr).await?).lines();
    a.get_mut().write_all(b"hello\n").await?;
    println!("a got: {}", read_line(&mut a).await);
    b.get_mut().write_all(b"shout good news\n").await?;
    println!("a got: {}", read_line(&mut a).await);
    println!("b got: {}", read_line(&mut b).await);

    // A crash in one connection's handler leaves the others alone.
    a.get_mut().write_all(b"panic\n").await?;
    println!("a after panic: {:?}", a.next_line().await.ok().flatten());
    b.get_mut().write_all(b"still here?\n").await?;
    println!("b got: {}", read_line(&mut b).await);

    // Shutdown drains: b is told to finish and says bye.
    root.stop().await;
    println!("b got: {}", read_line(&mut b).await);
    Ok(())
}
