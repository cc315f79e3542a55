import Foundation
import Graph
import ONNX

/// Writes a run's last checkpoint as an ONNX model with Kiln's metadata (docs/TRAINING.md).
public enum Exporter {
    /// The inference model of `checkpoint`, with metadata.
    public static func graph(from checkpoint: Checkpoint) throws -> Graph {
        let h = checkpoint.header
        // architecture() already holds every value.
        let g = try checkpoint.architecture()
        return try InferenceModel.build(model: g, values: [:], scale: Float(h.config.scale), metadata: metadata(h, graph: g))
    }

    static func json<T: Encodable>(_ v: T) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? e.encode(v)) ?? Data("null".utf8), as: UTF8.self)
    }

    static func metadata(_ h: Checkpoint.Header, graph: Graph) -> [String: String] {
        let input = graph.inputs.first.flatMap { Array($0.type.shape.dropFirst()).staticSizes } ?? []
        let cosine = graph.nodes.contains { $0.domain == "kiln" && $0.op == "NormedLinear" }
        return [
            "kiln.class_names": json(h.classNames),
            "kiln.class_counts": json(h.classCounts),
            "kiln.input_size": json(input),
            "kiln.layout": "NCHW",
            "kiln.resize": "direct",
            "kiln.pixel_scale": "1/255",
            "kiln.mean": json(h.mean),
            "kiln.std": json(h.std),
            "kiln.logits": cosine ? "scale·cosine (LDAM cosine head, scale \(h.config.scale)); softmax gives probabilities" : "linear",
            "kiln.training": json(h.config),
            "kiln.epochs_trained": String(h.epoch),
        ]
    }

    /// Reads `runDirectory`'s checkpoint, writes `path` atomically with the run's classifier
    /// adjustments folded in (`overriding`'s fields replace the run's), and returns the lines
    /// to print.
    public static func export(runDirectory: String, to path: String, overriding: ClassifierAdjustment = ClassifierAdjustment()) throws -> String {
        let cp = try Checkpoint.read(runDirectory: runDirectory)
        var g = try graph(from: cp)
        var notes: [String] = []
        var adjustment = cp.header.config.adjustment ?? ClassifierAdjustment()
        if let t = overriding.tauNorm { adjustment.tauNorm = t }
        if let t = overriding.logitAdjust { adjustment.logitAdjust = t }
        if !adjustment.isEmpty { (g, notes) = try adjustment.apply(to: g, classCounts: cp.header.classCounts) }
        try AtomicFile.write(try ONNXExport.bytes(g), to: path)
        return "exported \(path): epoch \(cp.header.epoch) of \(cp.header.config.epochs), \(cp.header.classCounts.count) classes, \(cp.header.config.loss.rawValue) head\n"
            + notes.map { "  \($0)\n" }.joined()
    }
}
