import ArgumentParser
import Compiler

/// `--no-tune`, for the commands that compile a model to run it.
struct TuneOptions: ParsableArguments {
    @Flag(name: .customLong("no-tune"), help: """
        Choose every convolution's algorithm by Kiln's built-in rule instead of by measuring the \
        candidates on this CPU. Tuning (the default) times each convolution shape's candidates \
        in the network the first time the shape is compiled — about a second for ResNet-50 — \
        and caches the choice per CPU in $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else \
        ~/.cache/kiln (tuning-<cpu>.json); KILN_TUNE=0 does the same as this flag.
        """)
    var noTune = false

    /// The compile options of the environment, with tuning off when asked.
    var compileOptions: CompileOptions {
        var o = CompileOptions.environment
        if noTune { o.tune = false }
        return o
    }
}
