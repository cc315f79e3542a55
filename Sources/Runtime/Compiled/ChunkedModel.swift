import Compiler
import Foundation
import Graph

/// What batch inference needs of a compiled model: fill the inputs, run, read the outputs.
public protocol BatchModel: AnyObject {
    /// Images per run.
    var batchSize: Int { get }
    func inputPointer(_ name: String) -> UnsafeMutablePointer<Float>?
    func outputPointer(_ name: String) -> UnsafeMutablePointer<Float>?
    func execute() throws
}

extension CompiledModel: BatchModel {
    public var batchSize: Int { program.batch }
    public func execute() throws { try execute(timing: nil) }
}

/// A large batch run as small chunks, each thread with its own single-threaded copy of the
/// model compiled at the chunk size: a chunk's activations stay in that core's cache through
/// every layer, where one program over the whole batch streams each layer's activations
/// through memory. Used for networks on small images (CIFAR-sized), where a chunk of a few
/// images fits in L2.
public final class ChunkedModel: BatchModel, @unchecked Sendable {
    public let batchSize: Int
    public let chunk: Int
    let parts: [CompiledModel]
    /// Full-batch staging buffers, by name, with floats per image.
    let inputs: [String: (buffer: UnsafeMutablePointer<Float>, perImage: Int)]
    let outputs: [String: (buffer: UnsafeMutablePointer<Float>, perImage: Int)]

    /// `graph` compiled at `chunk` images for each of `threads` threads, run as `batch`.
    public init(graph: Graph, batch: Int, chunk: Int, threads: Int) throws {
        batchSize = batch
        self.chunk = chunk
        parts = try (0..<threads).map { _ in try CompiledModel.compile(graph, batch: chunk, threads: 1) }
        func staging(_ bindings: [Program.Binding]) -> [String: (UnsafeMutablePointer<Float>, Int)] {
            Dictionary(uniqueKeysWithValues: bindings.map { b in
                let perImage = b.tensor.count / chunk
                return (b.name, (alignedFloats(perImage * batch), perImage))
            })
        }
        inputs = staging(parts[0].program.inputs)
        outputs = staging(parts[0].program.outputs)
    }

    deinit {
        for (_, v) in inputs { freeAlignedFloats(v.buffer, v.perImage * batchSize) }
        for (_, v) in outputs { freeAlignedFloats(v.buffer, v.perImage * batchSize) }
    }

    public func inputPointer(_ name: String) -> UnsafeMutablePointer<Float>? { inputs[name]?.buffer }
    public func outputPointer(_ name: String) -> UnsafeMutablePointer<Float>? { outputs[name]?.buffer }

    /// Thread t takes the t-th contiguous share of the batch (⌈batch / threads⌉ images) in
    /// chunks; a share's last chunk may be partial (its missing images are zeros whose
    /// outputs are dropped).
    public func execute() throws {
        let share = (batchSize + parts.count - 1) / parts.count
        let errors = UnsafeSendable(UnsafeMutablePointer<Error?>.allocate(capacity: parts.count))
        errors.value.initialize(repeating: nil, count: parts.count)
        defer { errors.value.deinitialize(count: parts.count); errors.value.deallocate() }
        DispatchQueue.concurrentPerform(iterations: parts.count) { t in
            let part = parts[t]
            let end = min(batchSize, (t + 1) * share)
            for first in stride(from: t * share, to: end, by: chunk) {
                let count = min(chunk, end - first)
                for (name, v) in inputs {
                    let dst = part.inputPointer(name)!
                    dst.update(from: v.buffer + first * v.perImage, count: count * v.perImage)
                    if count < chunk { (dst + count * v.perImage).update(repeating: 0, count: (chunk - count) * v.perImage) }
                }
                do { try part.execute() } catch { errors.value[t] = error; return }
                for (name, v) in outputs {
                    (v.buffer + first * v.perImage).update(from: part.outputPointer(name)!, count: count * v.perImage)
                }
            }
        }
        for t in 0..<parts.count { if let e = errors.value[t] { throw e } }
    }
}

extension CompiledModel {
    /// The fastest form for running `graph` at `batch` with `threads`: chunks of a few images
    /// per thread (`ChunkedModel`) when a chunk of at least two images keeps its activations
    /// within `cacheBytes` and the batch gives every thread at least two chunks; otherwise one
    /// program over the whole batch. The chunk is evened out over each thread's share (batch
    /// 32 on 2 threads: 4 chunks of 4 each rather than chunks of 5 and one of 1). KILN_CHUNK=N
    /// forces a chunk size (0: never chunk).
    public static func forThroughput(_ graph: Graph, batch: Int, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                                     cacheBytes: Int = 1 << 20) throws -> BatchModel {
        var chunk: Int
        let forced = ProcessInfo.processInfo.environment["KILN_CHUNK"].flatMap { Int($0) }
        if let forced {
            chunk = forced
        } else {
            // A one-image program's arena holds about three of its largest activations (a
            // residual block's input, its middle and its output); no compile needed to know.
            let largest = graph.valueTypes.values.compactMap { t -> Int? in
                t.rank >= 1 ? Array(t.shape.dropFirst()).staticSizes?.reduce(1, *) : nil
            }.max() ?? 0
            chunk = min(8, cacheBytes / max(3 * largest * 4, 1))
        }
        guard threads > 1, chunk >= (forced == nil ? 2 : 1), batch >= 2 * threads * chunk else {
            return try CompiledModel.compile(graph, batch: batch, threads: threads)
        }
        if forced == nil {
            let share = (batch + threads - 1) / threads, chunks = (share + chunk - 1) / chunk
            chunk = (share + chunks - 1) / chunks
        }
        return try ChunkedModel(graph: graph, batch: batch, chunk: chunk, threads: threads)
    }
}
