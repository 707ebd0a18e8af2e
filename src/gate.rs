//! The gate every call into the kernel passes, so that the exit handler halts the kernel only
//! when no thread is inside it (nothing may enter Linux after its halt).
//!
//! Each side announces itself before it looks at the other, and both use one total order
//! (SeqCst): a caller raises the count of callers inside, then checks for a halt; the exit
//! handler marks the halt, then checks the count. Whichever comes second sees the first, so
//! no call can slip in between the exit handler's check and the halt.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

pub struct Gate {
    /// Set by `close`; it stays set only when nobody was inside.
    closed: AtomicBool,
    /// Callers inside (each one counted until its `Inside` drops).
    inside: AtomicUsize,
    /// Tests: runs between a caller's two steps (raising the count, checking for a halt).
    #[cfg(test)]
    between: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// A caller counted as inside; it leaves when this drops, also when its call unwinds.
struct Inside<'a>(&'a Gate);

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, SeqCst);
    }
}

impl Gate {
    pub const fn new() -> Gate {
        Gate {
            closed: AtomicBool::new(false),
            inside: AtomicUsize::new(0),
            #[cfg(test)]
            between: std::sync::OnceLock::new(),
        }
    }

    /// Runs `f` counted as inside; `None` once the gate is closed.
    pub fn pass<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        self.inside.fetch_add(1, SeqCst);
        let inside = Inside(self);
        #[cfg(test)]
        if let Some(between) = self.between.get() {
            between();
        }
        if self.closed.load(SeqCst) {
            return None;
        }
        let ret = f();
        drop(inside);
        Some(ret)
    }

    /// In a forked child: callers the parent had inside did not follow.
    pub fn reset_in_child(&self) {
        self.inside.store(0, SeqCst);
    }

    /// Closes the gate if nobody is inside, and says whether it did. With a caller inside it
    /// stays open, as if never tried (a caller that looked meanwhile was turned away, which
    /// only happens while the process exits).
    pub fn close(&self) -> bool {
        self.closed.store(true, SeqCst);
        if self.inside.load(SeqCst) != 0 {
            self.closed.store(false, SeqCst);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    #[test]
    fn a_call_that_is_entering_when_the_gate_closes_keeps_it_open() {
        static GATE: Gate = Gate::new();
        static CLOSED_MEANWHILE: AtomicBool = AtomicBool::new(false);
        let _ = GATE
            .between
            .set(Box::new(|| CLOSED_MEANWHILE.store(GATE.close(), SeqCst)));
        let entered = GATE.pass(|| ()).is_some();
        let closed = CLOSED_MEANWHILE.load(SeqCst);
        assert!(
            !(entered && closed),
            "a call entered a kernel the exit handler was free to halt"
        );
        assert!(entered, "the gate stays open while a caller is inside");
    }

    #[test]
    fn a_closed_gate_turns_calls_away() {
        let gate = Gate::new();
        assert!(gate.close());
        assert_eq!(gate.pass(|| 1), None);
    }

    #[test]
    fn the_gate_closes_only_once_the_callers_inside_left() {
        let gate = Gate::new();
        let tried = gate.pass(|| gate.close());
        assert_eq!(tried, Some(false));
        assert_eq!(
            gate.pass(|| 2),
            Some(2),
            "a failed close leaves the gate open"
        );
        assert!(gate.close());
    }

    #[test]
    fn a_call_that_panics_leaves_the_gate() {
        let gate = Gate::new();
        let r = catch_unwind(AssertUnwindSafe(|| {
            gate.pass(|| panic!("inside the kernel"))
        }));
        assert!(r.is_err());
        assert!(gate.close(), "a panicked call still counts as inside");
    }
}
