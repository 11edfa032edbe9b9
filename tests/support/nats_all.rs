//! All of a [`NatsCluster`] killed and started again: a lone server of a
//! JetStream cluster is not healthy without a quorum, so the servers are
//! started together and then waited for.

use super::nats::NatsCluster;

impl NatsCluster {
    /// Kills servers `0..n` (SIGKILL; their stores stay).
    pub(crate) fn kill_all(&mut self, n: usize) {
        for i in 0..n {
            self.kill(i);
        }
    }

    /// Starts servers `0..n` again on their ports and stores, then waits
    /// until they are healthy.
    pub(crate) fn restart_all(&mut self, n: usize) {
        for i in 0..n {
            self.kill(i);
            self.start_server(i);
        }
        self.wait_healthy();
    }
}
