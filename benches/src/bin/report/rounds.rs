//! Interleaved rounds: how every micro-benchmark section times its variants.

/// Times variants of one workload in interleaved rounds and returns the
/// [`Rounds`](mux_benches::timing::Rounds).
///
/// `interleaved!(cfg, { "name" => call; … })`: each `call` is calibrated to one batch of
/// about `cfg.batch`, then every round of `cfg.rounds` times each variant once, in order
/// (after an untimed batch of the same variant). A variant written `"name" => call, if cond;`
/// is calibrated but only timed when `cond` holds.
///
/// A macro rather than a function over closures: each `call` stays a closure of its own type
/// inlined into its timing loop, as a direct call, whatever the variants' types are.
macro_rules! interleaved {
    ($cfg:expr, { $($name:literal => $call:expr $(, if $on:expr)?;)+ }) => {{
        let cfg: &$crate::config::Config = $cfg;
        let iters = [$(mux_benches::timing::calibrate(cfg.batch, || $call)),+];
        let mut rounds = mux_benches::timing::Rounds::default();
        for _ in 0..cfg.rounds {
            let mut iters = iters.iter();
            $(
                let n = *iters.next().expect("one count per variant");
                if true $(&& $on)? {
                    rounds.push($name, mux_benches::timing::ns_per_iter(n, || $call));
                }
            )+
        }
        rounds
    }};
}

pub(crate) use interleaved;
