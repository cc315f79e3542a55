import ArgumentParser
import CKernels
import Compiler
import Graph

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

/// `--precision f32|bf16`, for the commands that compile a model to run it (`kiln eval` has its
/// own, which also takes int8).
struct PrecisionOptions: ParsableArguments {
    @Option(help: """
        f32, or bf16: convolutions with activations and weights rounded to bfloat16 (sums in \
        f32) on AVX-512 BF16, each layer measured against f32 by the tuner (kept where \
        faster). A CPU without a bf16 dot product computes in f32 (with a note). Default: f32, \
        or bf16 when KILN_PRECISION=bf16.
        """)
    var precision: String?

    func validate() throws {
        if let precision, precision != "f32" && precision != "bf16" {
            throw ValidationError("--precision must be f32 or bf16, got '\(precision)'")
        }
    }

    /// `options` with the precision applied; an unknown precision is an error.
    func applied(_ options: CompileOptions) throws -> CompileOptions {
        guard let precision else { return options }
        return try Self.apply(precision, to: options)
    }

    static func apply(_ precision: String, to options: CompileOptions) throws -> CompileOptions {
        var o = options
        switch precision {
        case "f32": o.bf16 = false
        case "bf16":
            o.bf16 = true
            if kiln_bconv_fast() == 0 { writeStderr("kiln: note: this CPU has no bf16 dot product (AVX-512 BF16): computing in f32\n") }
        default: throw CLIError("--precision must be f32 or bf16, got '\(precision)'")
        }
        return o
    }
}
