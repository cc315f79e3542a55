import Compiler
import Foundation
import Graph

/// What batch inference needs of a compiled model: fill the inputs, run, read the outputs.
/// Buffers hold `batchSize` images; callers write and read within their counts.
public protocol BatchModel: AnyObject {
    /// Images per run.
    var batchSize: Int { get }
    func inputBuffer(_ name: String) -> UnsafeMutableBufferPointer<Float>?
    func outputBuffer(_ name: String) -> UnsafeMutableBufferPointer<Float>?
    func execute() throws
    /// New weight values from the graph compiled (CompiledModel.refresh).
    func refresh(values: Graph) throws
}

extension BatchModel {
    /// Input `name`'s buffer, checked to hold `batchSize × perImage` floats: a model whose
    /// input does not match what the caller prepares is an error, never an overrun.
    public func checkedInput(_ name: String, perImage: Int) throws -> UnsafeMutableBufferPointer<Float> {
        guard let b = inputBuffer(name) else { throw RuntimeError.missingInput(name) }
        guard b.count == batchSize * perImage else {
            throw RuntimeError.inputMismatch(name: name, expected: "\(b.count / max(batchSize, 1)) floats per image",
                                             got: "\(perImage) per image prepared")
        }
        return b
    }

    /// Output `name`'s buffer, checked to hold `batchSize × perImage` floats.
    public func checkedOutput(_ name: String, perImage: Int) throws -> UnsafeMutableBufferPointer<Float> {
        guard let b = outputBuffer(name) else { throw RuntimeError.kernel(node: name, op: "output", message: "the compiled model has no output '\(name)'") }
        guard b.count == batchSize * perImage else {
            throw RuntimeError.kernel(node: name, op: "output", message: "holds \(b.count) floats, expected \(batchSize) × \(perImage)")
        }
        return b
    }
}

extension CompiledModel: BatchModel {
    public var batchSize: Int { program.batch }
    public func execute() throws { try execute(timing: nil) }
}

/// A large batch run as small chunks, each part with its own copy of the model compiled at
/// the chunk size. Two uses: networks on small images (CIFAR-sized), where a chunk of a few
/// images per thread keeps its activations in that core's L2 through every layer (one
/// program over the whole batch streams each layer's activations through memory); and
/// models whose batch is fixed by a constant in the graph, which run in groups of that size.
public final class ChunkedModel: BatchModel, @unchecked Sendable {
    public let batchSize: Int
    public let chunk: Int
    let parts: [CompiledModel]
    /// Full-batch staging buffers, by name, with floats per image.
    let inputs: [String: (buffer: UnsafeMutablePointer<Float>, perImage: Int)]
    let outputs: [String: (buffer: UnsafeMutablePointer<Float>, perImage: Int)]

    /// `graph` compiled at `chunk` images for each of `parts` parts (run concurrently, each
    /// on `threadsPerPart` threads), run as `batch`.
    public init(graph: Graph, batch: Int, chunk: Int, parts: Int, threadsPerPart: Int = 1) throws {
        guard batch >= 1, chunk >= 1, parts >= 1 else {
            throw RuntimeError.kernel(node: "", op: "batch", message: "batch \(batch), chunk \(chunk) and parts \(parts) must be at least 1")
        }
        batchSize = batch
        self.chunk = chunk
        self.parts = try (0..<parts).map { _ in try CompiledModel.compile(graph, batch: chunk, threads: threadsPerPart) }
        func staging(_ bindings: [Program.Binding]) throws -> [String: (UnsafeMutablePointer<Float>, Int)] {
            var out: [String: (UnsafeMutablePointer<Float>, Int)] = [:]
            for b in bindings {
                guard b.tensor.shape.first == chunk, b.tensor.count % chunk == 0 else {
                    throw RuntimeError.kernel(node: b.name, op: "batch", message: "\(b.tensor.shape) has no leading batch of \(chunk)")
                }
                out[b.name] = (alignedFloats(b.tensor.count / chunk * batch), b.tensor.count / chunk)
            }
            return out
        }
        inputs = try staging(self.parts[0].program.inputs)
        outputs = try staging(self.parts[0].program.outputs)
    }

    /// `graph` in chunks of `chunk` images, one part per thread.
    public convenience init(graph: Graph, batch: Int, chunk: Int, threads: Int) throws {
        try self.init(graph: graph, batch: batch, chunk: chunk, parts: threads)
    }

    deinit {
        for (_, v) in inputs { freeAlignedFloats(v.buffer, v.perImage * batchSize) }
        for (_, v) in outputs { freeAlignedFloats(v.buffer, v.perImage * batchSize) }
    }

    public func inputBuffer(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        inputs[name].map { UnsafeMutableBufferPointer(start: $0.buffer, count: $0.perImage * batchSize) }
    }
    public func outputBuffer(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        outputs[name].map { UnsafeMutableBufferPointer(start: $0.buffer, count: $0.perImage * batchSize) }
    }

    /// Part t takes the t-th contiguous share of the batch (whole chunks, as even as the
    /// chunks allow); a share's last chunk may be partial (its missing images are zeros
    /// whose outputs are dropped).
    /// New weight values for every part's program (CompiledModel.refresh).
    public func refresh(values: Graph) throws { for part in parts { try part.refresh(values: values) } }

    public func execute() throws {
        let groups = (batchSize + chunk - 1) / chunk
        let share = (groups + parts.count - 1) / parts.count * chunk
        let errors = UnsafeSendable(UnsafeMutablePointer<Error?>.allocate(capacity: parts.count))
        errors.value.initialize(repeating: nil, count: parts.count)
        defer { errors.value.deinitialize(count: parts.count); errors.value.deallocate() }
        DispatchQueue.concurrentPerform(iterations: parts.count) { t in
            let part = parts[t]
            let end = min(batchSize, (t + 1) * share)
            for first in stride(from: t * share, to: end, by: chunk) {
                let count = min(chunk, end - first)
                for (name, v) in inputs {
                    let dst = part.inputBuffer(name)!
                    precondition(dst.count == chunk * v.perImage, "chunk input size")
                    dst.baseAddress!.update(from: v.buffer + first * v.perImage, count: count * v.perImage)
                    if count < chunk { (dst.baseAddress! + count * v.perImage).update(repeating: 0, count: (chunk - count) * v.perImage) }
                }
                do { try part.execute() } catch { errors.value[t] = error; return }
                for (name, v) in outputs {
                    let src = part.outputBuffer(name)!
                    precondition(src.count == chunk * v.perImage, "chunk output size")
                    (v.buffer + first * v.perImage).update(from: src.baseAddress!, count: count * v.perImage)
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
    ///
    /// A model whose batch is fixed (exporters write 1 by default) is rebound to `batch` when
    /// the graph allows it (`Graph.rebindingBatch`); otherwise it runs in groups of its fixed
    /// size, one program per thread, the last group padded, and `note` is told so once.
    public static func forThroughput(_ graph: Graph, batch: Int, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                                     cacheBytes: Int = 1 << 20, options: CompileOptions = .environment,
                                     note: ((String) -> Void)? = nil) throws -> BatchModel {
        guard batch >= 1 else { throw RuntimeError.kernel(node: "", op: "batch", message: "the batch must be at least 1, got \(batch)") }
        var graph = graph
        if case .fixed(let n)? = graph.batchDimension {
            if let rebound = graph.rebindingBatch() {
                graph = rebound
            } else if n == batch {
                return try CompiledModel.compile(graph, batch: batch, threads: threads, options: options)
            } else {
                let groups = (batch + n - 1) / n
                let parts = max(1, min(threads, groups))
                note?("the model's batch is fixed at \(n) by a constant in the graph; a batch of \(batch) runs "
                      + "as \(groups) group\(groups == 1 ? "" : "s") of \(n)" + (parts > 1 ? ", one program per thread" : ""))
                return try ChunkedModel(graph: graph, batch: batch, chunk: n, parts: parts, threadsPerPart: parts > 1 ? 1 : threads)
            }
        }
        var chunk: Int
        let forced = options.chunk
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
            return try CompiledModel.compile(graph, batch: batch, threads: threads, options: options)
        }
        if forced == nil {
            let share = (batch + threads - 1) / threads, chunks = (share + chunk - 1) / chunk
            chunk = (share + chunks - 1) / chunks
        }
        return try ChunkedModel(graph: graph, batch: batch, chunk: chunk, threads: threads)
    }
}
