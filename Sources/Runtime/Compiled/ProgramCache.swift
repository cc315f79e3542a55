import Compiler
import Foundation
import Graph

/// Compiled programs of one graph, one per batch size, compiled on first use and kept (the
/// last partial batch of a folder or an epoch gets its own program without recompiling the
/// full-size one).
public final class ProgramCache: @unchecked Sendable {
    public let graph: Graph
    public let threads: Int
    private var models: [Int: CompiledModel] = [:]
    private let lock = NSLock()

    public init(graph: Graph, threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.graph = graph
        self.threads = threads
    }

    /// The program for `batch`, compiling it if this is the first request.
    public func model(batch: Int) throws -> CompiledModel {
        lock.lock()
        defer { lock.unlock() }
        if let m = models[batch] { return m }
        let m = try CompiledModel.compile(graph, batch: batch, threads: threads)
        models[batch] = m
        return m
    }

    public var compiledBatchSizes: [Int] {
        lock.lock()
        defer { lock.unlock() }
        return models.keys.sorted()
    }
}
