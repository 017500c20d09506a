//! The `govgate` binary: everything happens in [`govgate::cli`].

fn main() -> std::process::ExitCode {
    govgate::cli::main()
}
