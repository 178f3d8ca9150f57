//! A route's model, loaded at start or when the route first needs it (see
//! [`ModelLoading`]). Either way it is loaded once, and a model that fails
//! to load gives the same reason to every object the route claims.

use crate::config::ModelLoading;
use std::sync::{Mutex, OnceLock};

type Init<T> = Box<dyn FnOnce() -> Result<T, String> + Send>;

pub struct Lazy<T> {
    cell: OnceLock<Result<T, String>>,
    init: Mutex<Option<Init<T>>>,
}

impl<T> Lazy<T> {
    /// `init` runs now (`AtStart`) or on the first [`get`](Self::get).
    pub fn new(
        when: ModelLoading,
        init: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Lazy<T> {
        let lazy = Lazy {
            cell: OnceLock::new(),
            init: Mutex::new(Some(Box::new(init))),
        };
        if when == ModelLoading::AtStart {
            let _ = lazy.get();
        }
        lazy
    }

    /// An already loaded model (tests, models built elsewhere).
    pub fn ready(value: Result<T, String>) -> Lazy<T> {
        let cell = OnceLock::new();
        let _ = cell.set(value);
        Lazy {
            cell,
            init: Mutex::new(None),
        }
    }

    /// The model, loading it on the first call; `Err`: why it cannot run.
    pub fn get(&self) -> Result<&T, &String> {
        self.cell
            .get_or_init(|| {
                let init = self.init.lock().unwrap_or_else(|p| p.into_inner()).take();
                match init {
                    Some(f) => f(),
                    None => Err("the model's loader was lost".to_string()),
                }
            })
            .as_ref()
    }

    /// `None` while not loaded yet; otherwise whether it loaded.
    pub fn tried(&self) -> Option<bool> {
        self.cell.get().map(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn on_first_use_loads_once_and_only_when_asked() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let l = Lazy::new(ModelLoading::OnFirstUse, move || {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(7)
        });
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(l.tried(), None);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert_eq!(l.get(), Ok(&7)));
            }
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(l.tried(), Some(true));
    }

    #[test]
    fn at_start_loads_now_and_a_failure_is_kept() {
        let l: Lazy<u8> = Lazy::new(ModelLoading::AtStart, || Err("no weights".into()));
        assert_eq!(l.tried(), Some(false));
        assert_eq!(l.get(), Err(&"no weights".to_string()));
    }
}
