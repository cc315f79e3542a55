import ArgumentParser
import Foundation
import Graph
import ONNX
import Runtime

extension Kiln {
    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert a model between .kiln text IR and .onnx.",
            discussion: """
                To .onnx: standard ONNX, opset 17, weights in raw_data, graph metadata as
                metadata_props. A .kiln model whose parameters are initialiser rules gets seeded
                random weights (--seed). To .kiln: the text IR, with every weight printed in full
                so the file keeps them (--weights summary prints summaries instead).

                Examples:
                  kiln convert models/resnet32-cifar.kiln -o resnet32.onnx --seed 7
                  kiln convert model.onnx -o model.kiln
                """
        )

        @Argument(help: "The model to read (.kiln or .onnx).")
        var model: String

        @Option(name: .shortAndLong, help: "The file to write (.onnx or .kiln); written atomically.")
        var output: String

        @Option(help: "Seed for weights given as initialiser rules.")
        var seed: UInt64 = 0

        @Option(help: "For .kiln output: full (every value) or summary.")
        var weights: Dump.Weights = .full

        func run() throws {
            try reportingErrors {
                var graph = try loadGraph(model)
                switch URL(fileURLWithPath: output).pathExtension.lowercased() {
                case "onnx":
                    if graph.parameters.contains(where: { $0.initializer.tensor == nil }) {
                        graph = try graph.materialized(seed: seed)
                    }
                    try ONNXExport.write(graph, to: output)
                case "kiln":
                    let text = TextFormat.print(graph, options: weights == .full ? .full : TextPrintOptions())
                    try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
                default:
                    throw CLIError("\(output): unknown output type (write .onnx or .kiln)")
                }
                emit("wrote \(output)\n")
            }
        }
    }
}
