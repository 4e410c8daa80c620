//! The integration tests, one binary (the layout ripgrep uses): each module is one area, and
//! `common` holds what several of them share. Tests read only the project's own material
//! (`scores/`, `tests/data/`, `tests/golden/`) and what they generate.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

/// Every allocation of the test binary goes through the counter of [`alloc`].
#[global_allocator]
static ALLOCATOR: alloc::CountingAlloc = alloc::CountingAlloc;

mod alloc;
mod audio;
mod common;
mod follow;
mod key_change;
mod live;
mod live_follow;
mod musicxml;
mod realrec;
mod relocate;
mod robust;
mod score;
mod show;
mod soft_dtw;
mod spot;
mod stage;
mod transposing;
mod web;
