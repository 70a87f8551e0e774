//! Ctrl-C and SIGTERM during a change, counted so that none is lost.
//!
//! Once anything listens for a signal, tokio replaces the default handler (which ends the
//! process) for good, and a signal that arrives while nothing awaits it is dropped: a Ctrl-C
//! between two waits would then do nothing at all. So a change starts [`listen`]ing once, on a
//! thread of its own that counts every signal for the rest of the process, and each step asks
//! whether more signals came than it has seen ([`after`]) — one that arrived before the step
//! began included.

use std::sync::{
    Mutex, Once, OnceLock, PoisonError,
    atomic::{AtomicU32, Ordering},
};

use tokio::sync::Notify;

/// The signals received so far.
struct Seen {
    count: AtomicU32,
    last: Mutex<&'static str>,
    notify: Notify,
}

fn seen() -> &'static Seen {
    static SEEN: OnceLock<Seen> = OnceLock::new();
    SEEN.get_or_init(|| Seen {
        count: AtomicU32::new(0),
        last: Mutex::new("Ctrl-C"),
        notify: Notify::new(),
    })
}

fn record(name: &'static str) {
    let s = seen();
    *s.last.lock().unwrap_or_else(PoisonError::into_inner) = name;
    s.count.fetch_add(1, Ordering::SeqCst);
    s.notify.notify_waiters();
}

/// Starts counting Ctrl-C and SIGTERM, once per process (later calls return at once). Returns
/// when the handlers are in place: from then on a signal no longer ends the process, it is
/// counted.
pub fn listen() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let (ready, installed) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("kubectl-mesh-signals".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    let _ = ready.send(());
                    return;
                };
                rt.block_on(count_forever(ready));
            });
        if spawned.is_ok() {
            let _ = installed.recv();
        }
    });
}

#[cfg(unix)]
async fn count_forever(ready: std::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (int, term) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    let _ = ready.send(());
    let (Ok(mut int), Ok(mut term)) = (int, term) else {
        return;
    };
    loop {
        let name = tokio::select! {
            _ = int.recv() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
        };
        record(name);
    }
}

#[cfg(not(unix))]
async fn count_forever(ready: std::sync::mpsc::Sender<()>) {
    let ctrl_c = tokio::signal::windows::ctrl_c();
    let _ = ready.send(());
    let Ok(mut ctrl_c) = ctrl_c else { return };
    while ctrl_c.recv().await.is_some() {
        record("Ctrl-C");
    }
}

/// How many signals have been received since [`listen`].
pub fn received() -> u32 {
    seen().count.load(Ordering::SeqCst)
}

/// Resolves, with the last signal's name, once more than `seen` signals have been received —
/// at once if they already have.
pub async fn after(already: u32) -> &'static str {
    let s = seen();
    loop {
        let notified = s.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if s.count.load(Ordering::SeqCst) > already {
            return *s.last.lock().unwrap_or_else(PoisonError::into_inner);
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_before_the_wait_began_is_not_lost() {
        let before = received();
        record("SIGTERM");
        // Nothing was waiting when it came: a wait that starts now still sees it.
        let name = tokio::time::timeout(std::time::Duration::from_secs(1), after(before))
            .await
            .expect("a signal received earlier is seen");
        assert_eq!(name, "SIGTERM");
        let waiting = tokio::spawn(after(received()));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no new signal yet");
        record("Ctrl-C");
        assert_eq!(waiting.await.unwrap(), "Ctrl-C");
    }
}
