//! Berkeley's algorithm (Gusella and Zatti, 1989), one round as a pure
//! function: the primary's readings of the members' clocks in, each
//! member's correction out.
//!
//! The primary notes its own clock before it asks (`sent_ms`) and when the
//! answer arrives (`received_ms`); the member answered `remote_ms`. Half
//! the round trip is taken as the answer's way back, so at `received_ms`
//! the member's clock read about `remote_ms + rtt / 2`, and its difference
//! from the primary is that minus `received_ms`. A reading whose round trip
//! is negative or above the bound is absurd (a slow path says little about
//! when the clock was read) and is left out, as is a clock more than a day
//! away. The primary counts itself with a difference of 0; the average of
//! the differences is the time everyone moves to: each member's correction
//! is the average minus its difference (the primary's, the average).

/// Largest difference taken for a clock reading (and largest correction a
/// node accepts), in ms: a day.
pub(crate) const MAX_CORRECTION_MS: i64 = 86_400_000;

/// One member's clock, as the primary read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reading {
    /// The member.
    pub(crate) node: String,
    /// The primary's clock when it asked, ms.
    pub(crate) sent_ms: i64,
    /// The primary's clock when the answer came, ms.
    pub(crate) received_ms: i64,
    /// The member's clock in its answer, ms.
    pub(crate) remote_ms: i64,
}

/// What a round decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Round {
    /// The primary's own correction, ms.
    pub(crate) own_ms: i64,
    /// Each member's correction (readings taken), ms.
    pub(crate) corrections: Vec<(String, i64)>,
    /// Readings left out, and why.
    pub(crate) ignored: Vec<(String, String)>,
}

/// One round over `readings`, leaving out round trips above `max_rtt_ms`.
pub(crate) fn round(readings: &[Reading], max_rtt_ms: i64) -> Round {
    let mut out = Round::default();
    let mut diffs: Vec<(String, i64)> = Vec::new();
    for r in readings {
        let rtt = r.received_ms.saturating_sub(r.sent_ms);
        if !(0..=max_rtt_ms).contains(&rtt) {
            out.ignored.push((
                r.node.clone(),
                format!("round trip {rtt} ms (bound {max_rtt_ms} ms)"),
            ));
            continue;
        }
        let diff = r
            .remote_ms
            .saturating_add(rtt / 2)
            .saturating_sub(r.received_ms);
        if diff.abs() > MAX_CORRECTION_MS {
            out.ignored.push((
                r.node.clone(),
                format!("clock {diff} ms away (more than a day)"),
            ));
            continue;
        }
        diffs.push((r.node.clone(), diff));
    }
    // The primary itself, at 0. Each |diff| <= a day: no overflow, and f64
    // holds the sum exactly.
    let n = diffs.len() as f64 + 1.0;
    let sum: i64 = diffs.iter().map(|(_, d)| *d).sum();
    let avg = (sum as f64 / n).round() as i64;
    out.own_ms = avg;
    out.corrections = diffs.into_iter().map(|(k, d)| (k, avg - d)).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(node: &str, sent: i64, received: i64, remote: i64) -> Reading {
        Reading {
            node: node.into(),
            sent_ms: sent,
            received_ms: received,
            remote_ms: remote,
        }
    }

    #[test]
    fn everyone_moves_to_the_average() {
        // b is in step (answered at mid round trip), c 6000 ms ahead.
        let round = round(&[r("b", 1000, 1010, 1005), r("c", 1000, 1020, 7010)], 500);
        assert!(round.ignored.is_empty());
        assert_eq!(round.own_ms, 2000);
        assert_eq!(
            round.corrections,
            vec![("b".to_string(), 2000), ("c".to_string(), -4000)]
        );
        // After the corrections, the three clocks (primary and b at 0, c at
        // +6000) agree.
        let (b, c) = (round.corrections[0].1, round.corrections[1].1);
        assert_eq!(round.own_ms, b);
        assert_eq!(6000 + c, round.own_ms);
    }

    #[test]
    fn absurd_readings_are_left_out() {
        let round = round(
            &[
                r("slow", 0, 900, 450),
                r("back", 100, 50, 75),
                r("far", 0, 10, 10 * MAX_CORRECTION_MS),
                r("ok", 0, 10, 105),
            ],
            500,
        );
        let ignored: Vec<&str> = round.ignored.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(ignored, ["slow", "back", "far"]);
        // ok is 100 ms ahead: the average of 0 and 100.
        assert_eq!(round.own_ms, 50);
        assert_eq!(round.corrections, vec![("ok".to_string(), -50)]);
    }

    #[test]
    fn alone_nothing_moves() {
        assert_eq!(round(&[], 500), Round::default());
    }
}
