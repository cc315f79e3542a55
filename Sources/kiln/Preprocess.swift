import ArgumentParser
import Foundation
import Graph
import Imaging

extension Kiln {
    struct PreprocessCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "preprocess",
            abstract: "Write the exact tensor a model receives for an image (or the decoded pixels) as .npy.",
            discussion: """
                When Kiln and another framework disagree on an image, the cause is usually preprocessing: compare this tensor (1 × C × H × W, float32, after channel conversion, resize, scaling and normalisation as the model's metadata or the options say) with what the other pipeline feeds. --raw writes the decoded pixels instead (uint8, H × W × C) before any conversion.

                Examples:
                  kiln preprocess model.onnx cat.jpg -o cat.npy
                  kiln preprocess --raw cat.jpg -o cat-pixels.npy
                """
        )

        @Argument(help: "The model, then the image (with --raw: only the image).")
        var paths: [String]
        @Option(name: .shortAndLong, help: "The .npy file to write.")
        var output: String
        @Flag(help: "Write the decoded pixels (uint8, H × W × C) instead of the model's input.")
        var raw = false
        @OptionGroup var preprocess: PreprocessOptions

        func run() throws {
            try reportingErrors {
                guard paths.count == (raw ? 1 : 2) else {
                    throw CLIError(raw ? "--raw takes one image: kiln preprocess --raw IMAGE -o pixels.npy" : "give the model and the image: kiln preprocess MODEL IMAGE -o tensor.npy")
                }
                let imagePath = paths.last!
                let image = try ImageDecoder.decode(path: imagePath, pixelLimit: preprocess.pixelLimit)
                let tensor: TensorData
                if raw {
                    tensor = TensorData(dtype: .u8, shape: [image.height, image.width, image.channels], bytes: image.pixels)
                } else {
                    let graph = try loadGraph(paths[0])
                    let p = try preprocess.preprocessing(for: graph)
                    var values = [Float](repeating: 0, count: p.tensorSize)
                    values.withUnsafeMutableBufferPointer { p.apply(image, into: $0.baseAddress!) }
                    tensor = TensorData(floats: values, shape: [1, p.channels, p.height, p.width])
                }
                try NPY.write(tensor, path: output)
                emit("wrote \(output): \(tensor.dtype)\(tensor.shape)\n")
            }
        }
    }
}
