import Foundation

/// What a compile may be told beyond the graph and the batch: the passes to run, the
/// Winograd choice and the chunk size of throughput runs. Passes and lowering read these,
/// never the environment; `environment` fills them from the debugging overrides
/// KILN_PASSES=dce,fold-bn,… (only those passes, to find one that breaks a model),
/// KILN_WINOGRAD=0|1 (Winograd off, or on from 8 input channels) and KILN_CHUNK=n (images
/// per chunk of a throughput run).
public struct CompileOptions: Sendable, Equatable {
    /// Names of the inference passes to run; nil runs them all.
    public var passes: Set<String>?
    /// Winograd forced off (false) or on wherever it applies (true); nil chooses by shape.
    public var winograd: Bool?
    /// Images per chunk of a throughput run (CompiledModel.forThroughput); nil chooses by size.
    public var chunk: Int?

    public init(passes: Set<String>? = nil, winograd: Bool? = nil, chunk: Int? = nil) {
        self.passes = passes
        self.winograd = winograd
        self.chunk = chunk
    }

    /// The defaults with the process's KILN_PASSES, KILN_WINOGRAD and KILN_CHUNK applied.
    public static let environment: CompileOptions = {
        let env = ProcessInfo.processInfo.environment
        return CompileOptions(passes: env["KILN_PASSES"].map { Set($0.split(separator: ",").map(String.init)) },
                              winograd: env["KILN_WINOGRAD"].flatMap { $0 == "0" ? false : $0 == "1" ? true : nil },
                              chunk: env["KILN_CHUNK"].flatMap { Int($0) })
    }()
}
