import Compiler
import Foundation
import Graph

/// Compiled programs of one graph, one per batch size, compiled on first use and kept (the
/// last partial batch of a folder or an epoch gets its own program without recompiling the
/// full-size one). `compile` makes a program: `CompiledModel.compile` by default (`kiln run`),
/// `CompiledModel.forThroughput` for the C ABI's sessions, as `kiln bench` compiles.
public final class ProgramCache<Model>: @unchecked Sendable {
    public let graph: Graph
    public let threads: Int
    private let compile: (Graph, Int, Int) throws -> Model
    private var models: [Int: Model] = [:]
    private let lock = NSLock()

    public init(graph: Graph, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                compile: @escaping (_ graph: Graph, _ batch: Int, _ threads: Int) throws -> Model) {
        self.graph = graph
        self.threads = threads
        self.compile = compile
    }

    /// The program for `batch`, compiling it if this is the first request.
    public func model(batch: Int) throws -> Model {
        lock.lock()
        defer { lock.unlock() }
        if let m = models[batch] { return m }
        let m = try compile(graph, batch, threads)
        models[batch] = m
        return m
    }

    public var compiledBatchSizes: [Int] {
        lock.lock()
        defer { lock.unlock() }
        return models.keys.sorted()
    }
}

extension ProgramCache where Model == CompiledModel {
    /// Programs compiled by `CompiledModel.compile` with `options`.
    public convenience init(graph: Graph, threads: Int = ProcessInfo.processInfo.activeProcessorCount, options: CompileOptions = .environment) {
        self.init(graph: graph, threads: threads) { try CompiledModel.compile($0, batch: $1, threads: $2, options: options) }
    }
}
