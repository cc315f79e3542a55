import ArgumentParser
import Foundation
import Compiler
import Graph
import Runtime

extension Kiln {
    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a network as text IR, Graphviz dot or JSON, or its per-layer statistics.",
            discussion: """
                The text output parses back (large weight tensors print as summaries unless
                --weights full). Statistics bind the symbolic batch dimension to --batch and
                count FLOPs as multiply-adds × 2 for Conv, Gemm and MatMul.

                Examples:
                  kiln dump models/resnet32-cifar.kiln
                  kiln dump models/resnet32-cifar.kiln --stats
                  kiln dump models/resnet18.kiln --stats --batch 16
                  kiln dump models/resnet8-mnist.kiln --format dot | dot -Tsvg -o resnet8.svg
                  kiln dump models/resnet8-mnist.kiln --format json --stats
                  kiln dump models/resnet8-mnist.kiln --train --loss ldam --class-counts 500,300,180,108,65,39,23,14,8,5
                  kiln dump models/resnet32-cifar.kiln --train --after all
                  kiln dump models/resnet32-cifar.kiln --train --program --batch 128

                With --train the graph is the training step: forward with BatchNorm in training
                mode, the loss (inputs labels, class_weights, lr), the backward graph built by
                reverse-mode differentiation, and one SGD update per trained parameter.
                """
        )

        enum Format: String, ExpressibleByArgument, CaseIterable {
            case text, dot, json
        }

        enum Weights: String, ExpressibleByArgument, CaseIterable {
            case summary, full
        }

        @Argument(help: "The model file (.kiln), or - for text IR on standard input.")
        var file: String

        @Option(help: "Output format: text (the IR), dot (Graphviz) or json.")
        var format: Format = .text

        @Flag(help: "Per node: output shape, parameters, FLOPs and activation bytes, with totals.")
        var stats = false

        @Option(help: "Batch size the statistics assume (the symbolic batch dimension).")
        var batch: Int = 1

        @Option(help: "How the text IR shows weight tensors: summary (count, min, max, mean) or full.")
        var weights: Weights = .summary

        @Option(help: "Print the graph after this compiler pass (\(Pass.inferencePipeline.map(\.name).joined(separator: ", "))), or after each with 'all'.")
        var after: String?

        @Option(help: "Seed for weights given as initialiser rules (passes such as fold-bn need values).")
        var seed: UInt64 = 0

        @Flag(help: "Print the compiled program: kernels, algorithms, layouts, arena offsets and size (batch from --batch).")
        var program = false

        @Flag(help: "Work on the training step (forward, loss, backward, SGD) instead of the inference graph.")
        var train = false

        @Option(help: "With --train: the loss, ce (softmax cross-entropy), focal, ldam, la, bs or vs (as kiln train's).")
        var loss: LossKind = .ce

        @Option(help: "With --train --loss ldam, la, bs or vs: training images per class, comma-separated (they set the margins or the prior).")
        var classCounts: String?

        @Option(help: "With --train --loss focal: the exponent γ.")
        var gamma: Float = 1


        func trainingOptions() throws -> TrainingOptions {
            guard loss.needsClassCounts else { return TrainingOptions(loss: loss.loss(classCounts: [], gamma: gamma)) }
            guard let text = classCounts else { throw ValidationError("--loss \(loss.rawValue) needs --class-counts (training images per class)") }
            let counts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw ValidationError("--class-counts must be positive integers separated by commas, got '\(text)'")
            }
            return TrainingOptions(loss: loss.loss(classCounts: counts.map { $0! }, gamma: gamma))
        }

        func validate() throws {
            guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
            if stats && format == .dot { throw ValidationError("--stats goes with --format text or json, not dot") }
            if let after, after != "all", Pass.named(after) == nil {
                throw ValidationError("unknown pass '\(after)'; the passes are \(Pass.inferencePipeline.map(\.name).joined(separator: ", ")) (or 'all')")
            }
            if !train && (loss != .ce || classCounts != nil) { throw ValidationError("--loss and --class-counts go with --train") }
            if train { _ = try trainingOptions() }
        }

        @OptionGroup var tuning: TuneOptions
        @OptionGroup var precision: PrecisionOptions

        func run() throws {
            try reportingErrors {
                var graph = try loadGraph(file)
                if train {
                    if graph.parameters.contains(where: { $0.initializer.tensor == nil }) { graph = try graph.materialized(seed: seed) }
                    graph = try Autodiff.trainingGraph(graph, options: trainingOptions())
                    if program || after != nil { graph = try graph.materialized(seed: seed) }
                }
                if program {
                    if graph.parameters.contains(where: { $0.initializer.tensor == nil }) { graph = try graph.materialized(seed: seed) }
                    emit(try CompiledModel.compile(graph, batch: batch, threads: 1, options: try precision.applied(tuning.compileOptions)).program.listing)
                    return
                }
                if let after {
                    if graph.parameters.contains(where: { $0.initializer.tensor == nil }) {
                        graph = try graph.materialized(seed: seed)
                    }
                    let stop = after == "all" ? nil : after
                    var printed = false
                    _ = try Pipeline.run(graph, passes: Pass.inferencePipeline) { pass, g in
                        guard !printed else { return }
                        if stop == nil { emit("# after \(pass.name): \(pass.summary)\n") }
                        if stop == nil || stop == pass.name {
                            emit(render(g))
                            if stop != nil { printed = true }
                        }
                    }
                    return
                }
                emit(render(graph))
            }
        }

        func render(_ graph: Graph) -> String {
                switch format {
                case .text:
                    if stats { return StatsTable.render(graph.stats(batch: batch), graph: graph) }
                    return TextFormat.print(graph, options: weights == .full ? .full : TextPrintOptions())
                case .dot:
                    return graph.dot()
                case .json:
                    return graph.json(stats: stats ? graph.stats(batch: batch) : nil).render() + "\n"
                }
        }
    }
}

enum StatsTable {
    static func grouped(_ n: Int) -> String {
        let s = String(n.magnitude)
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    static func short(_ d: Double) -> String { String(format: "%.6g", d) }

    static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var v = Double(n), u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.2f %@", v, units[u])
    }

    static func render(_ s: GraphStats, graph: Graph) -> String {
        let shapes = s.nodes.map { n in n.outputShapes.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: " ") }
        let nameWidth = min(40, max(4, s.nodes.map(\.name.count).max() ?? 4))
        let opWidth = max(2, s.nodes.map(\.op.count).max() ?? 2)
        let shapeWidth = max(12, shapes.map(\.count).max() ?? 12)
        func pad(_ t: String, _ w: Int, right: Bool = false) -> String {
            t.count >= w ? t : (right ? String(repeating: " ", count: w - t.count) + t : t + String(repeating: " ", count: w - t.count))
        }
        var lines: [String] = []
        lines.append("\(graph.name): \(s.nodes.count) nodes, batch \(s.batch)")
        lines.append(pad("node", nameWidth) + "  " + pad("op", opWidth) + "  " + pad("output shape", shapeWidth)
                     + "  " + pad("params", 11, right: true) + "  " + pad("FLOPs", 15, right: true) + "  " + pad("act. bytes", 13, right: true))
        for (n, shape) in zip(s.nodes, shapes) {
            lines.append(pad(n.name, nameWidth) + "  " + pad(n.op, opWidth) + "  " + pad(shape, shapeWidth)
                         + "  " + pad(grouped(n.parameters), 11, right: true) + "  " + pad(grouped(n.flops), 15, right: true)
                         + "  " + pad(grouped(n.activationBytes), 13, right: true))
        }
        let per = s.batch == 1 ? "per image" : "for batch \(s.batch)"
        lines.append("")
        lines.append("trainable parameters: \(grouped(s.trainableParameters))")
        lines.append("buffers (BatchNorm statistics): \(grouped(s.bufferElements)) elements; constants: \(grouped(s.constantElements)) elements; all parameters \(bytes(s.parameterBytes))")
        lines.append(String(format: "FLOPs \(per): conv+gemm %.4f G (%@), all ops %.4f G (%@)",
                            Double(s.denseFlops) / 1e9, grouped(s.denseFlops), Double(s.totalFlops) / 1e9, grouped(s.totalFlops)))
        lines.append("activations \(per): \(bytes(s.activationBytes)) (all node outputs)")
        return lines.joined(separator: "\n") + "\n"
    }
}
