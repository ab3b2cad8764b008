//! bottle-freeze: freeze running bot-bottle smolvm VMs into `.smolmachine` artifacts.
//!
//! Everything lives in this library; `src/main.rs` only parses arguments and hands over.

pub mod args;
pub mod cli;
pub mod config;
pub mod content;
pub mod demo;
pub mod docker;
pub mod doctor;
pub mod domain;
pub mod entry;
pub mod format;
pub mod freeze;
pub mod history;
pub mod hosts;
pub mod lock;
pub mod logging;
pub mod machines;
pub mod names;
pub mod private;
pub mod proc_stamp;
pub mod process;
pub mod recover;
pub mod registry;
pub mod sanitize;
pub mod secrets;
pub mod serve_client;
pub mod smolvm;
pub mod ui;
pub mod vocab;
