import Foundation
import Graph
import ONNX

/// Runs ONNX backend-test folders: `model.onnx` and `test_data_set_*/{input,output}_K.pb`.
public enum Conformance {
    public enum Outcome: Sendable, Equatable {
        case pass
        case fail(String)
        case unsupported(String)
    }

    /// Thrown by an executor for a graph it does not take: the test is reported unsupported.
    public struct Unsupported: Error {
        public var reason: String
        public init(reason: String) { self.reason = reason }
    }

    public struct Tolerance: Sendable {
        public var rtol: Double
        public var atol: Double
        public static let standard = Tolerance(rtol: 1e-3, atol: 1e-7)
    }

    /// Runs one test folder through `execute` (the reference executor by default).
    public static func run(_ folder: URL,
                           execute: (Graph, [String: TensorData]) throws -> [String: TensorData] = ReferenceExecutor.run) -> Outcome {
        let model = folder.appendingPathComponent("model.onnx").path
        guard FileManager.default.fileExists(atPath: model) else { return .unsupported("no model.onnx") }
        let tolerance = readTolerance(folder)
        let sets = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasPrefix("test_data_set_") }.sorted()
        guard !sets.isEmpty else { return .unsupported("no test_data_set_* folder") }
        let signature: [(name: String, dtype: DType?)]
        do { signature = try ONNXImport.inputSignature(path: model) } catch { return .unsupported(error.description) }

        for set in sets {
            let dir = folder.appendingPathComponent(set)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            if files.contains(where: { $0.hasSuffix(".unsupported") }) {
                return .unsupported("inputs or outputs are sequences, maps or optionals")
            }
            var inputs: [String: TensorData] = [:]
            var expected: [TensorData] = []
            do {
                var k = 0
                while files.contains("input_\(k).pb") {
                    let path = dir.appendingPathComponent("input_\(k).pb").path
                    let (name, t) = try TensorData.readProtobuf([UInt8](FileManager.default.contents(atPath: path) ?? Data()), path: path)
                    let bound = k < signature.count ? signature[k].name : name
                    inputs[bound.isEmpty ? name : bound] = t
                    k += 1
                }
                k = 0
                while files.contains("output_\(k).pb") {
                    let path = dir.appendingPathComponent("output_\(k).pb").path
                    expected.append(try TensorData.readProtobuf([UInt8](FileManager.default.contents(atPath: path) ?? Data()), path: path).tensor)
                    k += 1
                }
            } catch {
                return .unsupported("test data: \(error)")
            }
            // Integer inputs decide shapes (Slice bounds, Reshape targets): Kiln compiles
            // them in as constants, as it does for `kiln run`; so are float inputs an op
            // reads as a shape (Resize's scales and roi).
            let shaping = ONNXImport.compileTimeValues(path: model)
            let constants = inputs.filter { !$0.value.dtype.isFloatingPoint || shaping.contains($0.key) }
            let graph: Graph
            do {
                graph = try ONNXImport.load(path: model, constants: constants)
            } catch {
                return .unsupported(error.description.replacingOccurrences(of: model + ": ", with: ""))
            }
            let feeds = inputs.filter { name, _ in graph.inputs.contains { $0.name == name } }
            let outputs: [String: TensorData]
            do {
                outputs = try execute(graph, feeds)
            } catch let u as Unsupported {
                return .unsupported(u.reason)
            } catch {
                return .fail("\(set): \(error)")
            }
            guard expected.count <= graph.outputs.count else {
                return .fail("\(set): \(expected.count) expected outputs, the graph has \(graph.outputs.count)")
            }
            for (k, want) in expected.enumerated() {
                let name = graph.outputs[k].name
                guard let got = outputs[name] else { return .fail("\(set): output '\(name)' missing") }
                if let problem = compare(got, want, tolerance) { return .fail("\(set): output \(k) '\(name)': \(problem)") }
            }
        }
        return .pass
    }

    static func readTolerance(_ folder: URL) -> Tolerance {
        guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent("data.json").path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return .standard }
        return Tolerance(rtol: object["rtol"] as? Double ?? 1e-3, atol: object["atol"] as? Double ?? 1e-7)
    }

    /// nil when `got` matches `want` (numpy's allclose: |got − want| ≤ atol + rtol·|want|,
    /// NaN where NaN, exact for integers and bool), else a description of the worst element.
    public static func compare(_ got: TensorData, _ want: TensorData, _ tol: Tolerance) -> String? {
        guard got.dtype == want.dtype else { return "element type \(got.dtype), expected \(want.dtype)" }
        guard got.shape == want.shape else { return "shape \(got.shape), expected \(want.shape)" }
        var worst = -1, worstExcess = 0.0
        for k in 0..<want.count {
            let a = got.double(at: k), b = want.double(at: k)
            if a.isNaN || b.isNaN {
                if a.isNaN != b.isNaN { worst = k; worstExcess = .infinity; break }
                continue
            }
            if a == b { continue }
            let allowed = want.dtype.isFloatingPoint ? tol.atol + tol.rtol * abs(b) : 0
            let excess = abs(a - b) - allowed
            if excess > 0 && (worst < 0 || excess > worstExcess) { worst = k; worstExcess = excess }
        }
        guard worst >= 0 else { return nil }
        var coords: [Int] = []
        var rest = worst
        for d in want.shape.reversed() { coords.append(d == 0 ? 0 : rest % d); rest /= max(d, 1) }
        return "worst at \(Array(coords.reversed())): expected \(want.double(at: worst)), got \(got.double(at: worst))"
    }
}
