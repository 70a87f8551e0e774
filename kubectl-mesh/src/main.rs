//! `kubectl-mesh`: the krew entry point of `kubectl mesh`; see the library for how it
//! dispatches.

fn main() -> std::process::ExitCode {
    kubectl_mesh::main()
}
