import ArgumentParser
import Foundation
import Compiler
import Graph
import Runtime

extension Kiln {
    struct Conformance: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run ONNX backend-test folders and report pass, fail or unsupported for each.",
            discussion: """
                Each folder holds model.onnx and test_data_set_*/input_K.pb, output_K.pb (the
                layout of ONNX's backend tests; scripts/onnx_testdata.py writes them). A folder
                of such folders runs every test in it. Tolerances come from data.json where
                present, otherwise rtol 1e-3, atol 1e-7. Integer inputs are compiled in as
                constants (they decide shapes). With --expect FILE, every test named in FILE
                must pass, or the command exits 1.

                Examples:
                  kiln conformance .build/onnx-tests/node/test_conv_with_strides_padding
                  kiln conformance .build/onnx-tests/node --expect conformance/expected-pass.txt
                """
        )

        @Argument(help: "Test folders, or folders of test folders.")
        var folders: [String]

        @Option(help: "A file listing test names (one per line, # comments) that must pass.")
        var expect: String?

        @Flag(help: "Print only failures and the summary.")
        var quiet = false

        @Flag(help: "Run through the compiled path (passes, fused kernels, planned arena) instead of the reference kernels.")
        var compiled = false

        /// Compiles for the batch of the first input and runs; graphs the compiled path cannot
        /// take (values other than f32) are reported as unsupported.
        static func compiledExecute(_ graph: Graph, _ inputs: [String: TensorData]) throws -> [String: TensorData] {
            let batch = graph.inputs.first.flatMap { inputs[$0.name]?.shape.first } ?? 1
            let model: CompiledModel
            do {
                model = try CompiledModel.compile(graph, batch: batch, threads: 2)
            } catch let e as CompilerError {
                throw Runtime.Conformance.Unsupported(reason: e.description)
            }
            return try model.run(inputs)
        }

        func run() throws {
            try reportingErrors {
                var tests: [URL] = []
                for f in folders {
                    let url = URL(fileURLWithPath: f)
                    var isDir: ObjCBool = false
                    guard FileManager.default.fileExists(atPath: f, isDirectory: &isDir), isDir.boolValue else {
                        throw CLIError("\(f): not a folder")
                    }
                    if FileManager.default.fileExists(atPath: url.appendingPathComponent("model.onnx").path) {
                        tests.append(url)
                    } else {
                        let children = try FileManager.default.contentsOfDirectory(atPath: f).sorted()
                        tests += children.map { url.appendingPathComponent($0) }
                            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("model.onnx").path) }
                    }
                }
                var expected = Set<String>()
                if let expect {
                    guard let text = try? String(contentsOfFile: expect, encoding: .utf8) else { throw CLIError("\(expect): cannot read") }
                    for line in text.split(separator: "\n") {
                        let name = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingCharacters(in: .whitespaces)
                        if !name.isEmpty { expected.insert(name) }
                    }
                }
                var passed = 0, failed = 0, skipped = 0
                var regressions: [String] = [], newPasses: [String] = []
                var seen = Set<String>()
                for t in tests {
                    let name = t.lastPathComponent
                    seen.insert(name)
                    let outcome = compiled ? Runtime.Conformance.run(t, execute: Self.compiledExecute) : Runtime.Conformance.run(t)
                    switch outcome {
                    case .pass:
                        passed += 1
                        if !quiet { emit("PASS \(name)\n") }
                        if expect != nil && !expected.contains(name) { newPasses.append(name) }
                    case .fail(let why):
                        failed += 1
                        emit("FAIL \(name): \(why)\n")
                        if expected.contains(name) { regressions.append(name) }
                    case .unsupported(let why):
                        skipped += 1
                        if !quiet { emit("SKIP \(name): \(why)\n") }
                        if expected.contains(name) { regressions.append(name) }
                    }
                }
                let missing = expected.subtracting(seen)
                if expect != nil {
                    if !newPasses.isEmpty { emit("newly passing (not in \(expect!)): \(newPasses.joined(separator: " "))\n") }
                    if !missing.isEmpty { emit("expected tests not found: \(missing.sorted().joined(separator: " "))\n") }
                }
                emit("\(passed) passed, \(failed) failed, \(skipped) skipped\n")
                if !regressions.isEmpty {
                    throw fail("\(regressions.count) expected test\(regressions.count == 1 ? "" : "s") did not pass: \(regressions.joined(separator: " "))")
                }
                if expect != nil && !missing.isEmpty {
                    throw fail("\(missing.count) test\(missing.count == 1 ? "" : "s") listed in \(expect!) \(missing.count == 1 ? "was" : "were") not found in the folders given")
                }
            }
        }
    }
}
