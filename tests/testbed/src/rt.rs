//! The harness's own tokio runtime (one per process, two worker threads). It runs the injector
//! webhook and the harness's API calls, so the synchronous API works from plain `#[test]`s and
//! from inside other runtimes (`#[tokio::test]`) alike: work is spawned here and the calling
//! thread only blocks on the result.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// The process-wide harness runtime, built on first use.
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mesh-testbed")
            .enable_all()
            .build()
            .expect("building the mesh-testbed tokio runtime")
    })
}

/// Runs `fut` on the harness runtime and blocks the calling thread until it is done.
/// A panic inside `fut` is resumed on the caller.
pub fn block<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = runtime().spawn(fut);
    match futures::executor::block_on(handle) {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("mesh-testbed task cancelled: {e}"),
    }
}
