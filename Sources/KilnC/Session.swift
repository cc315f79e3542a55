import Foundation
import Graph
import ONNX
import Runtime

// The C ABI of the runtime (issue 20's first step), for Python's ctypes and any C caller:
// open a model, describe its inputs and outputs, run f32 tensors on caller-owned buffers at
// any batch size (each compiled once, on first use), close. Errors come back as a non-zero
// code or a null handle, with Kiln's one-line message copied into the caller's buffer.
// Runs on one session are serialised by its lock, so several threads may share it.

/// An open model: its graph and its programs by batch size.
final class Session {
    let graph: Graph
    let programs: ProgramCache
    let lock = NSLock()

    init(graph: Graph, threads: Int) {
        self.graph = graph
        programs = ProgramCache(graph: graph, threads: threads)
    }
}

/// Copies `message` (truncated, NUL-terminated) into `buffer` of `capacity` bytes.
func report(_ message: String, _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int32) {
    guard let buffer, capacity > 0 else { return }
    let bytes = Array(message.utf8.prefix(Int(capacity) - 1))
    for (i, b) in bytes.enumerated() { buffer[i] = CChar(bitPattern: b) }
    buffer[bytes.count] = 0
}

func describe(_ error: Error) -> String { String(describing: error) }

func session(_ handle: UnsafeMutableRawPointer?) -> Session? {
    handle.map { Unmanaged<Session>.fromOpaque($0).takeUnretainedValue() }
}

/// Opens the .onnx or .kiln model at `path` for `threads` threads (0: all cores). Null on
/// failure, with the message in `error`.
@_cdecl("kiln_session_open")
public func kiln_session_open(_ path: UnsafePointer<CChar>?, _ threads: Int32, _ message: UnsafeMutablePointer<CChar>?, _ messageCapacity: Int32) -> UnsafeMutableRawPointer? {
    guard let path else { report("no model path", message, messageCapacity); return nil }
    let p = String(cString: path)
    do {
        var graph: Graph
        if p.lowercased().hasSuffix(".onnx") {
            graph = try ONNXImport.load(path: p)
        } else {
            graph = try TextFormat.parse(String(contentsOfFile: p, encoding: .utf8)).materialized(seed: 0)
        }
        graph = try graph.verified()
        for v in graph.inputs + graph.outputs where v.type.dtype != .f32 {
            throw RuntimeError.inputMismatch(name: v.name, expected: "f32 (this interface passes f32 tensors)", got: v.type.description)
        }
        let n = threads > 0 ? Int(threads) : ProcessInfo.processInfo.activeProcessorCount
        return Unmanaged.passRetained(Session(graph: graph, threads: n)).toOpaque()
    } catch {
        report(describe(error), message, messageCapacity)
        return nil
    }
}

@_cdecl("kiln_session_close")
public func kiln_session_close(_ handle: UnsafeMutableRawPointer?) {
    guard let handle else { return }
    Unmanaged<Session>.fromOpaque(handle).release()
}

/// The number of inputs (`outputs` 0) or outputs (1).
@_cdecl("kiln_session_count")
public func kiln_session_count(_ handle: UnsafeMutableRawPointer?, _ outputs: Int32) -> Int32 {
    guard let s = session(handle) else { return -1 }
    return Int32(outputs != 0 ? s.graph.outputs.count : s.graph.inputs.count)
}

/// Input (or output) `index`'s name into `name`, and its shape into `dims` (a symbolic
/// dimension, the batch, as −1); returns the rank, or −1.
@_cdecl("kiln_session_describe")
public func kiln_session_describe(_ handle: UnsafeMutableRawPointer?, _ outputs: Int32, _ index: Int32,
                                  _ name: UnsafeMutablePointer<CChar>?, _ nameCapacity: Int32,
                                  _ dims: UnsafeMutablePointer<Int64>?, _ dimsCapacity: Int32) -> Int32 {
    guard let s = session(handle) else { return -1 }
    let values = outputs != 0 ? s.graph.outputs : s.graph.inputs
    guard index >= 0, Int(index) < values.count else { return -1 }
    let v = values[Int(index)]
    report(v.name, name, nameCapacity)
    let shape = v.type.shape.map { Int64($0.value ?? -1) }
    guard let dims, Int(dimsCapacity) >= shape.count else { return shape.count > Int(dimsCapacity) ? -1 : Int32(shape.count) }
    for (i, d) in shape.enumerated() { dims[i] = d }
    return Int32(shape.count)
}

/// Runs the model on `batch` images: `inputs[i]` holds input i (f32, its shape with the
/// batch), `outputs[j]` receives output j (f32; `outputCounts[j]` floats of room). Returns 0,
/// or 1 with the message in `error`.
@_cdecl("kiln_session_run")
public func kiln_session_run(_ handle: UnsafeMutableRawPointer?, _ batch: Int64,
                             _ inputs: UnsafePointer<UnsafePointer<Float>?>?, _ outputs: UnsafePointer<UnsafeMutablePointer<Float>?>?,
                             _ outputCounts: UnsafePointer<Int64>?,
                             _ message: UnsafeMutablePointer<CChar>?, _ messageCapacity: Int32) -> Int32 {
    guard let s = session(handle), let inputs, let outputs, let outputCounts else { report("a null argument", message, messageCapacity); return 1 }
    guard batch >= 1 else { report("the batch must be at least 1, got \(batch)", message, messageCapacity); return 1 }
    s.lock.lock()
    defer { s.lock.unlock() }
    do {
        let model = try s.programs.model(batch: Int(batch))
        for (i, v) in s.graph.inputs.enumerated() {
            guard let src = inputs[i], let dst = model.inputBuffer(v.name) else { throw RuntimeError.missingInput(v.name) }
            dst.baseAddress!.update(from: src, count: dst.count)
        }
        try model.execute()
        for (j, v) in s.graph.outputs.enumerated() {
            guard let out = model.outputBuffer(v.name), let dst = outputs[j] else { throw RuntimeError.kernel(node: v.name, op: "run", message: "no output buffer") }
            guard Int(outputCounts[j]) >= out.count else {
                throw RuntimeError.inputMismatch(name: v.name, expected: "room for \(out.count) floats", got: "\(outputCounts[j])")
            }
            dst.update(from: out.baseAddress!, count: out.count)
        }
        return 0
    } catch {
        report(describe(error), message, messageCapacity)
        return 1
    }
}
