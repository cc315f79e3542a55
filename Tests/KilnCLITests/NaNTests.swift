import Foundation
import Graph
import ONNX
import Runtime
import Testing

/// NaN and ±inf as ONNX and onnxruntime define them, for every op of the catalogue: the
/// reference kernels and the compiled program against onnxruntime's outputs
/// (scripts/nan_cases.py), on inputs holding NaN, +inf and −inf.
@Suite("NaN and infinities: reference and compiled kernels equal onnxruntime", .serialized)
struct NaNTests {
    static let cases: Result<(URL, [(name: String, op: String)]), Error> = Result {
        let dir = try scratch("nan-cases")
        let r = try run(python, [repositoryRoot.appendingPathComponent("scripts/nan_cases.py").path, dir.path])
        guard r.status == 0 else { throw RuntimeError.kernel(node: "", op: "nan_cases.py", message: r.stderr) }
        let list = try String(contentsOf: dir.appendingPathComponent("cases.txt"), encoding: .utf8)
        return (dir, list.split(separator: "\n").map { line in
            let f = line.split(separator: "\t").map(String.init)
            return (f[0], f[1])
        })
    }

    /// Where `got` differs from onnxruntime's `want`: NaN must meet NaN, an infinity the same
    /// infinity, a finite value a finite value within 1e-5 + 1e-4·|want|.
    static func mismatch(_ got: TensorData, _ want: TensorData) -> String? {
        guard got.shape == want.shape else { return "shape \(got.shape), onnxruntime \(want.shape)" }
        for k in 0..<want.count {
            let g = got.double(at: k), w = want.double(at: k)
            let same = w.isNaN ? g.isNaN : w.isInfinite ? g == w : g.isFinite && abs(g - w) <= 1e-5 + 1e-4 * abs(w)
            if !same { return "element \(k): \(g), onnxruntime \(w)" }
        }
        return nil
    }

    static func check(_ name: String, compiled: Bool) throws -> [String] {
        let (dir, _) = try cases.get()
        let d = dir.appendingPathComponent(name)
        let graph = try ONNXImport.load(path: d.appendingPathComponent("model.onnx").path)
        var feeds: [String: TensorData] = [:]
        for (k, v) in graph.inputs.enumerated() { feeds[v.name] = try NPY.read(path: d.appendingPathComponent("input_\(k).npy").path) }
        let outputs: [String: TensorData]
        if compiled {
            let batch = graph.inputs.first.flatMap { feeds[$0.name]?.shape.first } ?? 1
            outputs = try CompiledModel.compile(graph, batch: batch, threads: 2).run(feeds)
        } else {
            outputs = try ReferenceExecutor.run(graph, inputs: feeds)
        }
        var problems: [String] = []
        for (k, v) in graph.outputs.enumerated() {
            let want = try NPY.read(path: d.appendingPathComponent("output_\(k).npy").path)
            guard let got = outputs[v.name] else { problems.append("no output \(v.name)"); continue }
            if let m = mismatch(got, want) { problems.append("\(v.name): \(m)") }
        }
        return problems
    }

    @Test("every case, reference kernels")
    func reference() throws {
        for c in try Self.cases.get().1 {
            let p = try Self.check(c.name, compiled: false)
            #expect(p.isEmpty, "\(c.name) (\(c.op)), reference: \(p.joined(separator: "; "))")
        }
    }

    @Test("every case, compiled program")
    func compiled() throws {
        for c in try Self.cases.get().1 {
            let p = try Self.check(c.name, compiled: true)
            #expect(p.isEmpty, "\(c.name) (\(c.op)), compiled: \(p.joined(separator: "; "))")
        }
    }

    @Test("the cases cover every ONNX op of the catalogue")
    func coverage() throws {
        let covered = Set(try Self.cases.get().1.flatMap { $0.op.split(separator: ",").map(String.init) })
        let onnxOps = Set(OpCatalogue.all.filter { $0.domain.isEmpty || $0.domain == "ai.onnx" }.map(\.name))
        #expect(onnxOps.subtracting(covered).isEmpty, "no NaN case for \(onnxOps.subtracting(covered).sorted())")
        #expect(onnxOps.count >= 40)
    }
}

extension NaNTests {
    @Test("kiln run counts NaN and infinities in its input and output summaries")
    func runSummary() throws {
        let (dir, _) = try Self.cases.get()
        let d = dir.appendingPathComponent("relu")
        let x = try NPY.read(path: d.appendingPathComponent("input_0.npy").path)
        let want = try NPY.read(path: d.appendingPathComponent("output_0.npy").path)
        func counts(_ t: TensorData) -> (Int, Int) {
            (0..<t.count).reduce((0, 0)) { c, k in
                let v = t.double(at: k)
                return (c.0 + (v.isNaN ? 1 : 0), c.1 + (v.isInfinite ? 1 : 0))
            }
        }
        let (xNaN, xInf) = counts(x), (yNaN, yInf) = counts(want)
        #expect(xNaN > 0 && xInf > 0 && yNaN > 0 && yInf > 0)
        let r = try kiln("run", d.appendingPathComponent("model.onnx").path, "--input", d.appendingPathComponent("input_0.npy").path)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("kiln: input x: f32[2, 3, 4, 5]") && r.stderr.contains("NaN \(xNaN)  ±inf \(xInf)"), "\(r.stderr)")
        #expect(r.stdout.contains("y: f32[2, 3, 4, 5]") && r.stdout.contains("NaN \(yNaN)  ±inf \(yInf)"), "\(r.stdout)")
        #expect(!r.stdout.contains("min inf"), "\(r.stdout)")
    }
}
