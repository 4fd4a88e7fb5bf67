//! The `tokenwarden` binary: argument parsing lives in the library (`tokenwarden::cli`) so tests
//! can drive every command without a process.

fn main() -> std::process::ExitCode {
    tokenwarden::cli::main()
}
