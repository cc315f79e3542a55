import ArgumentParser
import Foundation
import Graph
import ONNX
import Runtime

extension Kiln {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a model on tensors from .npy or .pb files and write its outputs as .npy.",
            discussion: """
                Inputs are NAME=FILE pairs (FILE alone for a model with one input). Integer
                inputs of an ONNX model are compiled in as constants, as they decide shapes.
                A .kiln model whose parameters are initialiser rules gets seeded random
                weights (--seed). Each output is written to DIR/NAME.npy; the command prints
                shapes, a summary, and the top-5 classes of outputs that look like class
                scores ([N, C]).

                By default the model is compiled (passes, fused kernels, planned arena) for the
                batch of its inputs; --reference runs the naive reference kernels instead.

                Examples:
                  kiln run model.onnx --input data=image.npy --output out/
                  kiln run models/resnet8-mnist.kiln --input image=digits.npy --seed 1
                """
        )

        @Argument(help: "The model (.onnx or .kiln).")
        var model: String

        @Option(name: .customLong("input"), help: "NAME=FILE (.npy or .pb); repeat for each input.")
        var inputs: [String] = []

        @Option(help: "Folder for the output .npy files (created if missing).")
        var output: String?

        @Flag(help: "Run with the naive reference kernels instead of the compiled program.")
        var reference = false

        @Option(help: "Threads for the compiled program (default: all cores).")
        var threads: Int = ProcessInfo.processInfo.activeProcessorCount

        @Option(help: "Seed for the weights of a .kiln model given as initialiser rules.")
        var seed: UInt64 = 0

        // Long by choice: one command read top to bottom — load, gather the inputs (files,
        // specs, random), bind, run compiled or reference, summarise and write the outputs.
        @OptionGroup var tuning: TuneOptions
        @OptionGroup var precision: PrecisionOptions

        func run() throws {
            try reportingErrors {
                var given: [(String?, TensorData, String)] = []
                for spec in inputs {
                    if let eq = spec.firstIndex(of: "="), !spec.hasPrefix("=") {
                        let name = String(spec[..<eq]), file = String(spec[spec.index(after: eq)...])
                        given.append((name, try readTensorFile(file), file))
                    } else {
                        given.append((nil, try readTensorFile(spec), spec))
                    }
                }
                // Integer inputs of ONNX models, and float inputs read as shapes (Resize's
                // scales), become constants; name them from the model's signature.
                var constants: [String: TensorData] = [:]
                var signature: [String] = []
                if model.lowercased().hasSuffix(".onnx") {
                    signature = try ONNXImport.inputSignature(path: model).map(\.name)
                    let shaping = ONNXImport.compileTimeValues(path: model)
                    for (k, g) in given.enumerated() {
                        guard let n = g.0 ?? (given.count == signature.count ? signature[k] : nil) else { continue }
                        if !g.1.dtype.isFloatingPoint || shaping.contains(n) { constants[n] = g.1 }
                    }
                }
                var graph = try loadGraph(model, constants: constants)
                if graph.parameters.contains(where: { $0.initializer.tensor == nil }) {
                    graph = try graph.materialized(seed: seed)
                    writeStderr("kiln: weights drawn from the initialiser rules with seed \(seed)\n")
                }
                var feeds: [String: TensorData] = [:]
                let names = graph.inputs.map(\.name)
                for (k, g, _) in given {
                    if let n = k {
                        if constants[n] != nil { continue }
                        guard names.contains(n) else {
                            throw CLIError("the model has no input '\(n)' (its inputs: \(names.joined(separator: ", ")))")
                        }
                        feeds[n] = g
                    }
                }
                let unnamed = given.filter { $0.0 == nil && !constants.values.contains($0.1) }
                if !unnamed.isEmpty {
                    guard unnamed.count == 1, names.count == 1 else {
                        throw CLIError("name each input as NAME=FILE (the model's inputs: \(names.joined(separator: ", ")))")
                    }
                    feeds[names[0]] = unnamed[0].1
                }
                for n in names where feeds[n] == nil {
                    let t = graph.inputs.first { $0.name == n }!.type
                    throw CLIError("no value for input '\(n)' (\(t)); pass --input \(n)=FILE")
                }
                // Check the inputs against the model's declared types before compiling.
                for v in graph.inputs where feeds[v.name]!.dtype != v.type.dtype {
                    throw RuntimeError.inputMismatch(name: v.name, expected: v.type.description, got: feeds[v.name]!.type.description)
                }
                // A model with a fixed batch takes a larger one when the graph allows rebinding it,
                // and otherwise runs in groups of its fixed size.
                var group: Int? = nil
                if case .fixed(let n)? = graph.batchDimension, let b = graph.inputs.first.flatMap({ feeds[$0.name]?.shape.first }), b != n,
                   graph.inputs.allSatisfy({ feeds[$0.name]?.shape.first == b }) {
                    if let rebound = graph.rebindingBatch() {
                        graph = rebound
                    } else {
                        group = n
                        printNote("the model's batch is fixed at \(n) by a constant in the graph; running the \(b) inputs in groups of \(n)")
                    }
                }
                let perGroup = group, g = graph
                // Groups share one program (the cache compiles each batch size once).
                let programs = ProgramCache(graph: g, threads: threads, options: try precision.applied(tuning.compileOptions))
                let runOnce: ([String: TensorData]) throws -> [String: TensorData] = { feeds in
                    _ = try g.specialized(inputShapes: feeds.mapValues(\.shape))
                    if reference { return try ReferenceExecutor.run(g, inputs: feeds) }
                    let batch = g.inputs.first.flatMap { v in feeds[v.name]?.shape.first } ?? 1
                    return try programs.model(batch: batch).run(feeds)
                }
                for v in graph.inputs {
                    let t = feeds[v.name]!
                    writeStderr("kiln: input \(v.name): \(t.dtype)\(t.shape)  \(t.summary.line(StatsTable.short))\n")
                }
                let start = Date()
                let outputs = try perGroup.map { try runInGroups(of: $0, feeds, runOnce) } ?? runOnce(feeds)
                let seconds = Date().timeIntervalSince(start)
                if let dir = output {
                    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                }
                let classNames = graph.metadata["kiln.class_names"].map(metadataList)
                for v in graph.outputs {
                    let t = outputs[v.name]!
                    let s = t.summary
                    emit("\(v.name): \(t.dtype)\(t.shape)  \(s.line(StatsTable.short))\n")
                    if t.dtype.isFloatingPoint, t.shape.count == 2, t.shape[1] >= 2 {
                        let c = t.shape[1]
                        for row in 0..<min(t.shape[0], 8) {
                            let scores = (0..<c).map { t.double(at: row * c + $0) }
                            let top = scores.indices.sorted { scores[$0] > scores[$1] }.prefix(5)
                            let text = top.map { i in "\(classNames.map { $0.indices.contains(i) ? $0[i] : "\(i)" } ?? "\(i)") (\(StatsTable.short(scores[i])))" }
                            emit("  [\(row)] top-5: \(text.joined(separator: ", "))\n")
                        }
                        if t.shape[0] > 8 { emit("  … \(t.shape[0] - 8) more rows\n") }
                    }
                    if let dir = output {
                        let file = URL(fileURLWithPath: dir).appendingPathComponent(safeFileName(v.name) + ".npy").path
                        try NPY.write(t, path: file)
                        emit("  written to \(file)\n")
                    }
                }
                writeStderr(String(format: "kiln: ran in %.3f s (%@)\n", seconds, reference ? "reference kernels" : "compiled, including compilation"))
            }
        }

        /// `body` over groups of `n` images of `feeds` (the last padded with zeros), outputs
        /// joined along the batch with the padding dropped.
        func runInGroups(of n: Int, _ feeds: [String: TensorData], _ body: ([String: TensorData]) throws -> [String: TensorData]) throws -> [String: TensorData] {
            let total = feeds.values.first?.shape.first ?? 0
            var parts: [String: [TensorData]] = [:]
            for first in stride(from: 0, to: total, by: n) {
                let count = min(n, total - first)
                let out = try body(feeds.mapValues { $0.images(first..<(first + count), padTo: n) })
                for (name, t) in out {
                    guard t.shape.first == n else { throw CLIError("output '\(name)' has no batch of \(n) to split: \(t.type)") }
                    parts[name, default: []].append(t.images(0..<count))
                }
            }
            return try parts.mapValues { p in
                guard let joined = TensorData.joiningImages(p) else { throw CLIError("the outputs of the groups do not join") }
                return joined
            }
        }

        func safeFileName(_ s: String) -> String {
            let cleaned = String(s.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." ? $0 : "_" })
            return cleaned.isEmpty || cleaned.hasPrefix(".") ? "output" + cleaned : cleaned
        }
    }
}

extension Kiln.Run {
    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }
}

/// A list stored in model metadata: a JSON array of strings (what `kiln export` writes), or
/// comma-separated text.
func metadataList(_ text: String) -> [String] {
    if let d = text.data(using: .utf8), let list = try? JSONDecoder().decode([String].self, from: d) { return list }
    return text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
}
