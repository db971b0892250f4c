//! A small shutdown signal for background tasks.

use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves once the trigger fired.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// A tick every `period` until the trigger fires (the first at once; a
    /// late tick delays the next rather than bunching them):
    /// `while ticks.next().await { … }`.
    pub fn ticks(&self, period: std::time::Duration) -> Ticks {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticks { interval, shutdown: self.clone() }
    }
}

/// See [`Shutdown::ticks`].
#[derive(Debug)]
pub struct Ticks {
    interval: tokio::time::Interval,
    shutdown: Shutdown,
}

impl Ticks {
    /// Waits for the next tick: `false` once the trigger fired.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.interval.tick() => true,
            () = self.shutdown.wait() => false,
        }
    }
}
