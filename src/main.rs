#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    gatekeeper::cli::main()
}
