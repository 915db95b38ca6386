//! One internal logging macro set that maps to `defmt`, `log`, or nothing.

#[cfg(feature = "defmt")]
macro_rules! debug {
    ($($t:tt)*) => { defmt::debug!($($t)*) };
}

#[cfg(all(feature = "log", not(feature = "defmt")))]
macro_rules! debug {
    ($($t:tt)*) => { ::log::debug!($($t)*) };
}

#[cfg(not(any(feature = "log", feature = "defmt")))]
macro_rules! debug {
    ($($t:tt)*) => {{}};
}

pub(crate) use debug;
