import Foundation

/// What a compile may be told beyond the graph and the batch: the passes to run, the
/// Winograd choice and the chunk size of throughput runs. Passes and lowering read these,
/// never the environment; `environment` fills them from the debugging overrides
/// KILN_PASSES=dce,fold-bn,… (only those passes, to find one that breaks a model),
/// KILN_WINOGRAD=0|1 (Winograd off, or on from 8 input channels), KILN_CHUNK=n (images
/// per chunk of a throughput run), KILN_FUSE_EXPAND=0 (1×1 → depthwise pairs as two steps),
/// KILN_STRIDED_DIRECT=0|1 (stride-2 convolutions never on the direct kernel, or dense ones too)
/// KILN_FUSE_GATE=0 (a squeeze-and-excitation product as its own step) and KILN_TUNE=0
/// (every convolution's algorithm by the heuristic, none measured), KILN_INT8=0 (QDQ models'
/// convolutions in f32 on the quantization grid, not on the int8 kernels) and KILN_PRECISION=bf16
/// (bf16 convolutions where the CPU has a bf16 dot product).
public struct CompileOptions: Sendable, Equatable {
    /// Names of the inference passes to run; nil runs them all.
    public var passes: Set<String>?
    /// Winograd forced off (false) or on wherever it applies (true); nil chooses by shape.
    public var winograd: Bool?
    /// Images per chunk of a throughput run (CompiledModel.forThroughput); nil chooses by size.
    public var chunk: Int?
    /// A 1×1 convolution and the depthwise one that reads it lowered to one step (Expand).
    public var fuseExpand: Bool
    /// Stride-2 convolutions on the direct kernel (over the input's phases): false never,
    /// true for dense ones too, nil for grouped ones only (measured, BENCHMARKS.md).
    public var stridedDirect: Bool?
    /// A squeeze-and-excitation gate's product folded into the 1×1 convolution that reads it.
    public var fuseGate: Bool
    /// Convolution algorithms chosen by measuring the candidates on this CPU (cached per CPU:
    /// the runtime's Tuner) rather than by the heuristic. Off in a plain `CompileOptions()`,
    /// on in `.environment` unless KILN_TUNE=0.
    public var tune: Bool
    /// A QDQ model's convolutions on the int8 kernels where the CPU has a fast 8-bit dot
    /// product (their input quantized per tensor, their weights on a per-channel int8 grid);
    /// false keeps them in f32 on the quantization grid.
    public var int8: Bool
    /// Convolutions on the bf16 kernel (activations and weights rounded to bf16, sums in f32)
    /// where the CPU has a bf16 dot product, and the tuner finds it faster than f32.
    public var bf16: Bool

    public init(passes: Set<String>? = nil, winograd: Bool? = nil, chunk: Int? = nil, fuseExpand: Bool = true, stridedDirect: Bool? = nil,
                fuseGate: Bool = true, tune: Bool = false, int8: Bool = true, bf16: Bool = false) {
        self.passes = passes
        self.winograd = winograd
        self.chunk = chunk
        self.fuseExpand = fuseExpand
        self.stridedDirect = stridedDirect
        self.fuseGate = fuseGate
        self.tune = tune
        self.int8 = int8
        self.bf16 = bf16
    }

    /// The defaults with the process's KILN_PASSES, KILN_WINOGRAD, KILN_CHUNK, KILN_FUSE_EXPAND,
    /// KILN_STRIDED_DIRECT, KILN_FUSE_GATE, KILN_TUNE, KILN_INT8 and KILN_PRECISION applied (tuning on unless KILN_TUNE=0).
    public static let environment: CompileOptions = {
        let env = ProcessInfo.processInfo.environment
        return CompileOptions(passes: env["KILN_PASSES"].map { Set($0.split(separator: ",").map(String.init)) },
                              winograd: env["KILN_WINOGRAD"].flatMap { $0 == "0" ? false : $0 == "1" ? true : nil },
                              chunk: env["KILN_CHUNK"].flatMap { Int($0) }, fuseExpand: env["KILN_FUSE_EXPAND"] != "0",
                              stridedDirect: env["KILN_STRIDED_DIRECT"].flatMap { $0 == "0" ? false : $0 == "1" ? true : nil },
                              fuseGate: env["KILN_FUSE_GATE"] != "0", tune: env["KILN_TUNE"] != "0",
                              int8: env["KILN_INT8"] != "0", bf16: env["KILN_PRECISION"] == "bf16")
    }()
}
