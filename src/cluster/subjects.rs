//! The NATS subjects and the stream of membership and clock
//! synchronisation, all named after the members bucket, so that two
//! clusters on one NATS (two buckets) never hear each other.

use super::ClusterSettings;

/// Where membership and clock synchronisation talk, for one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subjects {
    prefix: String,
    bucket: String,
}

impl Subjects {
    /// The subjects of `settings.members_bucket`.
    pub(crate) fn new(settings: &ClusterSettings) -> Self {
        Subjects {
            prefix: format!("corral.cluster.{}", settings.members_bucket),
            bucket: settings.members_bucket.clone(),
        }
    }

    /// The stream whose sequence hands out ranks: `<bucket>_ranks`.
    pub(crate) fn ranks_stream(&self) -> String {
        format!("{}_ranks", self.bucket)
    }

    /// The subject a registration publishes on to get its rank.
    pub(crate) fn ranks(&self) -> String {
        format!("{}.ranks", self.prefix)
    }

    /// The subject `node` answers clock requests on.
    pub(crate) fn clock(&self, node: &str) -> String {
        format!("{}.clock.{node}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_after_the_bucket() {
        let s = Subjects::new(&ClusterSettings::default());
        assert_eq!(s.ranks_stream(), "corral_members_ranks");
        assert_eq!(s.ranks(), "corral.cluster.corral_members.ranks");
        assert_eq!(s.clock("n1"), "corral.cluster.corral_members.clock.n1");
    }
}
