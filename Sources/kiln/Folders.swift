import ArgumentParser
import Compiler
import Foundation
import Graph
import Imaging
import Runtime

/// Options shared by `kiln infer`, `kiln eval` and `kiln preprocess`: the preprocessing
/// overrides.
struct PreprocessOptions: ParsableArguments {
    @Option(help: "Input size HxW (default: the model's).")
    var size: String?
    @Option(help: "Resize policy: direct, or shorter-side (then a centre crop). Default: the model's metadata, else direct.")
    var resize: Preprocessing.Resize?
    @Option(name: .customLong("resize-size"), help: "Shorter side before the centre crop (default: height / 0.875).")
    var resizeSize: Int?
    @Option(help: "Per-channel mean in [0, 1] units, comma-separated (default: the model's metadata, else 0).")
    var mean: String?
    @Option(help: "Per-channel std, comma-separated (default: the model's metadata, else 1).")
    var std: String?
    @Option(name: .customLong("pixel-limit"), help: "Refuse images with more pixels than this (decompression bombs).")
    var pixelLimit: Int = ImageDecoder.defaultPixelLimit

    /// The preprocessing for `graph`, with overrides; notes on stderr what was assumed.
    func preprocessing(for graph: Graph) throws -> Preprocessing {
        guard let input = graph.inputs.first else { throw CLIError("the model has no input") }
        let dims = Array(input.type.shape.dropFirst()).map { $0.value ?? -1 }
        var (p, assumed) = try Preprocessing.from(metadata: graph.metadata, inputShape: dims)
        if let size {
            let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts.allSatisfy({ $0 > 0 }) else { throw CLIError("--size takes HxW, e.g. 224x224; got '\(size)'") }
            guard parts == [p.height, p.width] || dims.count == 3 && dims[1] < 0 else {
                throw CLIError("--size \(size) does not match the model's input \(p.height)x\(p.width)")
            }
        }
        if let resize { p.resize = resize; assumed.removeAll { $0.hasPrefix("resize") } }
        if let resizeSize { p.resizeSize = resizeSize }
        if let mean { p.mean = try parseFloats(mean, flag: "--mean", count: p.channels) }
        if let std {
            p.std = try parseFloats(std, flag: "--std", count: p.channels)
            guard p.std.allSatisfy({ $0 > 0 }) else { throw CLIError("--std values must be positive") }
        }
        if mean != nil || std != nil { assumed.removeAll { $0.hasPrefix("pixels") } }
        if !assumed.isEmpty {
            printNote("the model has no Kiln preprocessing metadata; assumed: \(assumed.joined(separator: "; ")) (override with --resize, --mean, --std)")
        }
        return p
    }
}

/// One image's result: its logits row, or why it was skipped.
struct FolderResult {
    var path: String
    var logits: [Float]?
    var error: ImageError?
}

/// Batched inference over files: decoding (in parallel) of the next batch overlaps the
/// compiled model's run of the current one; at most two batches are in memory.
/// The images at `paths` decoded and preprocessed on every core, one tensor after another;
/// a file that cannot be used has its error in place of a tensor (its floats are zeros).
func prepareImages(_ paths: [String], _ preprocessing: Preprocessing, pixelLimit: Int) -> FolderInference.Prepared {
    let size = preprocessing.tensorSize
    var tensors = [Float](repeating: 0, count: paths.count * size)
    var errors = [ImageError?](repeating: nil, count: paths.count)
    tensors.withUnsafeMutableBufferPointer { t in
        let base = UnsafeSendable(t.baseAddress!)
        errors.withUnsafeMutableBufferPointer { e in
            let errs = UnsafeSendable(e.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: paths.count) { k in
                do throws(ImageError) {
                    let image = try ImageDecoder.decodeChecked(path: paths[k], pixelLimit: pixelLimit)
                    preprocessing.apply(image, into: base.value + k * size)
                } catch {
                    (errs.value + k).pointee = error
                }
            }
        }
    }
    return FolderInference.Prepared(paths: paths, tensors: tensors, errors: errors)
}

final class FolderInference: @unchecked Sendable {
    let model: BatchModel
    let input: UnsafeMutablePointer<Float>
    let output: UnsafeMutablePointer<Float>
    let batch: Int, classes: Int
    let preprocessing: Preprocessing
    let pixelLimit: Int
    let threads: Int

    init(graph: Graph, preprocessing: Preprocessing, batch: Int, threads: Int, pixelLimit: Int, options: CompileOptions = .environment) throws {
        guard batch >= 1 else { throw CLIError("--batch must be at least 1") }
        guard let out = graph.outputs.first, out.type.rank == 2, let c = out.type.shape[1].value else {
            throw CLIError("the model's first output must be class scores [N, C], got \(graph.outputs.first?.type.description ?? "none")")
        }
        model = try CompiledModel.forThroughput(graph, batch: batch, threads: threads, options: options, note: printNote)
        // Preprocessing writes tensorSize floats per image: the model's input must hold that.
        input = try model.checkedInput(graph.inputs[0].name, perImage: preprocessing.tensorSize).baseAddress!
        output = try model.checkedOutput(out.name, perImage: c).baseAddress!
        self.batch = batch
        classes = c
        self.preprocessing = preprocessing
        self.pixelLimit = pixelLimit
        self.threads = threads
    }

    struct Prepared {
        var paths: [String]
        var tensors: [Float]
        var errors: [ImageError?]
    }

    func prepare(_ paths: [String]) -> Prepared { prepareImages(paths, preprocessing, pixelLimit: pixelLimit) }

    /// Runs every file; `each` receives the results of a batch, in order.
    /// The paths are made a batch at a time: a million-file listing stays compact.
    func run(_ files: PathList, each: ([FolderResult]) throws -> Void) throws {
        let size = preprocessing.tensorSize
        let chunks = (files.count + batch - 1) / batch
        guard chunks > 0 else { return }
        let queue = DispatchQueue(label: "kiln.decode")
        nonisolated(unsafe) var next: Prepared? = nil
        let ready = DispatchSemaphore(value: 0)
        func startPreparing(_ k: Int) {
            let paths = (k * batch..<min((k + 1) * batch, files.count)).map { files[$0] }
            queue.async { [self] in
                next = prepare(paths)
                ready.signal()
            }
        }
        startPreparing(0)
        for k in 0..<chunks {
            ready.wait()
            let current = next!
            if k + 1 < chunks { startPreparing(k + 1) }
            let good = current.errors.indices.filter { current.errors[$0] == nil }
            for (slot, i) in good.enumerated() {
                current.tensors.withUnsafeBufferPointer { (input + slot * size).update(from: $0.baseAddress! + i * size, count: size) }
            }
            if !good.isEmpty {
                if good.count < batch { (input + good.count * size).update(repeating: 0, count: (batch - good.count) * size) }
                try model.execute()
            }
            var results: [FolderResult] = []
            var slot = 0
            for i in current.paths.indices {
                if let e = current.errors[i] {
                    results.append(FolderResult(path: current.paths[i], logits: nil, error: e))
                } else {
                    results.append(FolderResult(path: current.paths[i], logits: Array(UnsafeBufferPointer(start: output + slot * classes, count: classes)), error: nil))
                    slot += 1
                }
            }
            try each(results)
        }
    }
}

/// Class names and training counts stored by `kiln export`, when present.
func modelClasses(_ graph: Graph, classes: Int) -> (names: [String], counts: [Int]?) {
    var names = graph.metadata["kiln.class_names"].map(metadataList) ?? []
    if names.count != classes { names = (0..<classes).map(String.init) }
    var counts: [Int]? = nil
    if let text = graph.metadata["kiln.class_counts"], let d = text.data(using: .utf8), let v = try? JSONDecoder().decode([Int].self, from: d), v.count == classes {
        counts = v
    }
    return (names, counts)
}

/// Softmax of a row, unless the row already is a distribution (a model ending in Softmax).
func probabilities(_ logits: [Float]) -> [Float] {
    let sum = logits.reduce(0, +)
    if logits.allSatisfy({ $0 >= 0 && $0 <= 1 }) && abs(sum - 1) < 1e-3 { return logits }
    let top = logits.max() ?? 0
    let e = logits.map { Foundation.exp($0 - top) }
    let total = e.reduce(0, +)
    return e.map { $0 / total }
}

/// Reports skipped files: one line each on stderr, and in `errorsFile` when given.
/// The errors file is written like the main output: under a temporary name, moved into place
/// when the run finishes, removed when it fails.
final class SkipReport {
    var count = 0
    let sink: OutputSink?
    let errorsPath: String?

    init(errorsFile: String?) throws {
        errorsPath = errorsFile
        sink = try errorsFile.map { try OutputSink(path: $0) }
    }

    func add(_ e: ImageError) throws { try add(line: "\(e.path): \(e.reason)") }

    /// A skipped file as its line, "PATH: REASON".
    func add(line: String) throws {
        count += 1
        writeStderr("kiln: skipped \(line)\n")
        try sink?.write(line + "\n")
    }

    func finish() throws {
        try sink?.close()
        if count > 0 {
            writeStderr("kiln: \(count) file\(count == 1 ? "" : "s") skipped\(errorsPath.map { ", listed in \($0)" } ?? "")\n")
        }
    }
}

/// A model for folder inference: a file with weights; a .kiln file of initialiser rules gets
/// seeded random weights, with a note (it is untrained).
func loadClassifier(_ path: String) throws -> Graph {
    let g = try loadGraph(path)
    guard g.parameters.contains(where: { $0.initializer.tensor == nil }) else { return g }
    printNote("\(path) has no trained weights; using random ones (seed 0)")
    return try g.materialized(seed: 0)
}
