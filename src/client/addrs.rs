//! Lists of node addresses: `host:port` entries, repeated or
//! comma-separated, checked before anything is dialled.

use super::SessionError;

/// Parses node addresses: each item may hold several, separated by commas
/// (`"a:7071,b:7072"`); spaces around entries and empty entries are
/// ignored. Each entry must be `host:port` (a name, an IPv4 address, or an
/// IPv6 address in brackets, `[::1]:7070`) with a port from 1 to 65535;
/// the first that is not is a [`SessionError::BadAddress`] naming it.
/// Repeats are kept once, in their first place. An empty result is an
/// error too.
///
/// ```
/// use corral::client::parse_addrs;
/// let addrs = parse_addrs(["127.0.0.1:7071, 127.0.0.1:7072", "localhost:7073"]).unwrap();
/// assert_eq!(addrs, ["127.0.0.1:7071", "127.0.0.1:7072", "localhost:7073"]);
/// assert!(parse_addrs(["127.0.0.1"]).is_err());
/// ```
pub fn parse_addrs<I, S>(items: I) -> Result<Vec<String>, SessionError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for item in items {
        for entry in item.as_ref().split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            check(entry)?;
            if !out.iter().any(|a| a == entry) {
                out.push(entry.to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(SessionError::BadAddress {
            addr: String::new(),
            why: "no address given".into(),
        });
    }
    Ok(out)
}

/// Checks one `host:port` entry.
fn check(entry: &str) -> Result<(), SessionError> {
    let bad = |why: &str| SessionError::BadAddress {
        addr: entry.to_string(),
        why: why.to_string(),
    };
    let (host, port) = entry
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    let host_ok = if let Some(v6) = host.strip_prefix('[') {
        v6.strip_suffix(']')
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && !host.contains(':')
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    if !host_ok {
        return Err(bad("the host is not a name or an IP address"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad("the port must be a number from 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lists() {
        assert_eq!(
            parse_addrs(["a:1,b:2", " c:3 ", "a:1", ","]).expect("ok"),
            ["a:1", "b:2", "c:3"]
        );
        assert_eq!(parse_addrs(["[::1]:7070"]).expect("ok"), ["[::1]:7070"]);
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "nohost",
            ":7070",
            "h:0",
            "h:70700",
            "h:x",
            "::1:7070",
            "[::1:7070",
            "h st:1",
            "h/x:1",
        ] {
            match parse_addrs(["ok:1", bad]) {
                Err(SessionError::BadAddress { addr, .. }) => assert_eq!(addr, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_addrs([" , "]),
            Err(SessionError::BadAddress { .. })
        ));
        let none: [&str; 0] = [];
        assert!(parse_addrs(none).is_err());
    }
}
