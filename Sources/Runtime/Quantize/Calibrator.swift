import Compiler
import Foundation
import Graph

/// Collects the ranges of a model's activations over calibration batches: the model compiled
/// with every tensor to observe as an extra output, run batch by batch. With the percentile
/// method the images go through twice: first the extremes, then a histogram of 2,048 bins
/// between them, from which the percentiles are read.
public final class Calibrator {
    public let tensors: [String]
    public let batch: Int
    public let method: Quantization.Method
    let model: BatchModel
    let input: UnsafeMutableBufferPointer<Float>
    /// Per tensor: its buffer in the program (nil for the graph input) and floats per image.
    let buffers: [(UnsafeMutableBufferPointer<Float>?, Int)]
    var lo: [Float], hi: [Float]
    var histograms: [[Int]] = []
    static let bins = 2048
    /// Images seen in the current pass.
    public private(set) var images = 0

    /// Whether `method` needs a second pass over the images (after `beginSecondPass`).
    public var needsSecondPass: Bool { if case .percentile = method { return histograms.isEmpty }; return false }

    public init(graph: Graph, tensors: [String], batch: Int, threads: Int, method: Quantization.Method) throws {
        guard let x = graph.inputs.first, graph.inputs.count == 1 else {
            throw RuntimeError.kernel(node: "", op: "calibration", message: "calibration needs a model with one input, this one has \(graph.inputs.count)")
        }
        if case .percentile(let p) = method, !(p > 50 && p <= 100) {
            throw RuntimeError.kernel(node: "", op: "calibration", message: "the percentile must be in (50, 100], got \(p)")
        }
        var observed = graph
        let types = graph.valueTypes
        for t in tensors where t != x.name {
            guard let type = types[t] else { throw RuntimeError.kernel(node: "", op: "calibration", message: "no tensor named '\(t)'") }
            observed.outputs.append(Value(t, type))
        }
        let model = try CompiledModel.forThroughput(observed, batch: batch, threads: threads)
        self.model = model
        guard let inputBuffer = model.inputBuffer(x.name) else { throw RuntimeError.missingInput(x.name) }
        input = inputBuffer
        let compiled = model
        self.buffers = try tensors.map { t in
            if t == x.name { return (nil, inputBuffer.count / batch) }
            guard let b = compiled.outputBuffer(t) else { throw RuntimeError.kernel(node: "", op: "calibration", message: "tensor '\(t)' is not observable") }
            return (b, b.count / batch)
        }
        self.tensors = tensors
        self.batch = batch
        self.method = method
        lo = Array(repeating: .infinity, count: tensors.count)
        hi = Array(repeating: -.infinity, count: tensors.count)
    }

    /// Floats per image of the model's input.
    public var inputSize: Int { input.count / batch }

    /// Runs `images` images (at most `batch`, `inputSize` floats each, from `data`) and records
    /// their tensors' values; NaN and infinities are ignored.
    public func observe(_ data: UnsafeBufferPointer<Float>, images count: Int) throws {
        precondition(count >= 1 && count <= batch && data.count >= count * inputSize)
        let size = inputSize
        input.baseAddress!.update(from: data.baseAddress!, count: count * size)
        if count < batch { (input.baseAddress! + count * size).update(repeating: 0, count: (batch - count) * size) }
        try model.execute()
        for (k, (buffer, perImage)) in buffers.enumerated() {
            let values = UnsafeBufferPointer(start: (buffer ?? input).baseAddress!, count: count * perImage)
            if histograms.isEmpty {
                var l = lo[k], h = hi[k]
                for v in values where v.isFinite { l = min(l, v); h = max(h, v) }
                lo[k] = l
                hi[k] = h
            } else {
                let l = lo[k], width = (hi[k] - l) / Float(Self.bins)
                guard width > 0 else { continue }
                histograms[k].withUnsafeMutableBufferPointer { bins in
                    for v in values where v.isFinite {
                        bins[min(max(Int((v - l) / width), 0), Self.bins - 1)] += 1
                    }
                }
            }
        }
        images += count
    }

    /// Starts the histogram pass of the percentile method (the same images again).
    public func beginSecondPass() {
        histograms = Array(repeating: Array(repeating: 0, count: Self.bins), count: tensors.count)
        images = 0
    }

    /// Each tensor's range: the extremes, or with the percentile method the bin edges holding
    /// the percentile of the values from each end.
    public func ranges() -> [String: (lo: Float, hi: Float)] {
        var out: [String: (lo: Float, hi: Float)] = [:]
        for (k, t) in tensors.enumerated() {
            guard lo[k] <= hi[k] else { out[t] = (0, 0); continue }
            guard case .percentile(let p) = method, !histograms.isEmpty else { out[t] = (lo[k], hi[k]); continue }
            let bins = histograms[k], total = bins.reduce(0, +)
            let width = (hi[k] - lo[k]) / Float(Self.bins)
            guard total > 0, width > 0 else { out[t] = (lo[k], hi[k]); continue }
            let tail = Double(total) * (100 - p) / 100
            var below = 0.0, first = 0
            while first < Self.bins - 1 && below + Double(bins[first]) <= tail { below += Double(bins[first]); first += 1 }
            var above = 0.0, last = Self.bins - 1
            while last > first && above + Double(bins[last]) <= tail { above += Double(bins[last]); last -= 1 }
            out[t] = (lo[k] + Float(first) * width, lo[k] + Float(last + 1) * width)
        }
        return out
    }
}
