import Foundation
import Compiler
import Graph
import ONNX
import Runtime

// The C ABI of the runtime, for Python's ctypes (python/kiln) and any C caller: open a model
// (a path or bytes in memory) for a thread count and precision, describe its inputs and
// outputs, run f32 tensors on caller-owned buffers at any batch size (each batch size compiled
// once, on first use, as `kiln bench` compiles it), close. Errors come back as a non-zero code
// or a null handle, with Kiln's one-line message copied into the caller's buffer.
// Runs on one session are serialised by its lock, so several threads may share it.
//
//   void *kiln_session_open(const char *path, int32_t threads, const char *precision,
//                           char *message, int32_t capacity);
//   void *kiln_session_open_bytes(const void *bytes, int64_t length, int32_t threads,
//                                 const char *precision, char *message, int32_t capacity);
//   int32_t kiln_session_count(void *session, int32_t outputs);
//   int32_t kiln_session_describe(void *session, int32_t outputs, int32_t index, char *name,
//                                 int32_t name_capacity, int64_t *dims, int32_t dims_capacity);
//   int32_t kiln_session_run(void *session, int64_t batch, const float *const *inputs,
//                            float *const *outputs, const int64_t *output_counts,
//                            char *message, int32_t capacity);
//   int64_t kiln_session_metadata(void *session, char *json, int64_t capacity);
//   double kiln_session_last_run_seconds(void *session);
//   void kiln_session_close(void *session);
//   const char *kiln_version(void);

/// An open model: its graph and its programs by batch size.
final class Session {
    let graph: Graph
    /// Chunked over the threads for large batches of small images, as `kiln bench` and
    /// `kiln infer` compile.
    let programs: ProgramCache<any BatchModel>
    let lock = NSLock()
    /// Seconds inside the last finished run (copy in, execute, copy out); guarded by `lock`.
    var lastRunSeconds = 0.0

    init(graph: Graph, threads: Int, options: CompileOptions = .environment) {
        self.graph = graph
        programs = ProgramCache(graph: graph, threads: threads) { try CompiledModel.forThroughput($0, batch: $1, threads: $2, options: options) }
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

struct OpenError: Error, CustomStringConvertible {
    var description: String
}

/// A verified graph made a session; `precision` must name what Kiln computes in.
func open(_ load: () throws -> Graph, threads: Int32, precision: UnsafePointer<CChar>?,
          _ message: UnsafeMutablePointer<CChar>?, _ messageCapacity: Int32) -> UnsafeMutableRawPointer? {
    do {
        let p = precision.map { String(cString: $0) } ?? "f32"
        guard p == "f32" || p == "bf16" else {
            throw OpenError(description: "precision '\(p)' is not available: Kiln computes in f32 or bf16 (a QDQ int8 model runs on the int8 kernels as it is)")
        }
        var options = CompileOptions.environment
        options.bf16 = p == "bf16"
        guard threads >= 0 else { throw OpenError(description: "threads must be 0 (every core) or more, got \(threads)") }
        let graph = try load().verified()
        for v in graph.inputs + graph.outputs where v.type.dtype != .f32 {
            throw RuntimeError.inputMismatch(name: v.name, expected: "f32 (this interface passes f32 tensors)", got: v.type.description)
        }
        let n = threads > 0 ? Int(threads) : ProcessInfo.processInfo.activeProcessorCount
        return Unmanaged.passRetained(Session(graph: graph, threads: n, options: options)).toOpaque()
    } catch {
        report(describe(error), message, messageCapacity)
        return nil
    }
}

/// Opens the .onnx or .kiln model at `path` for `threads` threads (0: every core) computing
/// in `precision` (null: "f32"). Null on failure, with the message in `message`.
@_cdecl("kiln_session_open")
public func kiln_session_open(_ path: UnsafePointer<CChar>?, _ threads: Int32, _ precision: UnsafePointer<CChar>?,
                              _ message: UnsafeMutablePointer<CChar>?, _ messageCapacity: Int32) -> UnsafeMutableRawPointer? {
    guard let path else { report("no model path", message, messageCapacity); return nil }
    let p = String(cString: path)
    return open({
        if p.lowercased().hasSuffix(".onnx") { return try ONNXImport.load(path: p) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw OpenError(description: "\(p): no such model file")
        }
        guard p.lowercased().hasSuffix(".kiln") else {
            throw OpenError(description: "\(p): unknown model file type (Kiln reads .onnx and .kiln text IR)")
        }
        guard let text = try? String(contentsOfFile: p, encoding: .utf8) else { throw OpenError(description: "\(p): cannot read it as UTF-8 text") }
        // A .kiln file of initialiser rules gets seeded random weights (seed 0), as `kiln run`.
        return try TextFormat.parse(text, file: p).materialized(seed: 0)
    }, threads: threads, precision: precision, message, messageCapacity)
}

/// Opens an ONNX model held in memory (`length` bytes; external data files are not read).
@_cdecl("kiln_session_open_bytes")
public func kiln_session_open_bytes(_ bytes: UnsafeRawPointer?, _ length: Int64, _ threads: Int32, _ precision: UnsafePointer<CChar>?,
                                    _ message: UnsafeMutablePointer<CChar>?, _ messageCapacity: Int32) -> UnsafeMutableRawPointer? {
    guard let bytes, length > 0 else { report("no model bytes", message, messageCapacity); return nil }
    let buffer = UnsafeRawBufferPointer(start: bytes, count: Int(length))
    return open({ try ONNXImport.graph(from: buffer, path: "<bytes>", baseDirectory: nil) },
                threads: threads, precision: precision, message, messageCapacity)
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

/// The model's metadata (ONNX metadata_props: class names, preprocessing, …) as a JSON object
/// written into `json` when `capacity` bytes hold it with its NUL; returns its length in bytes
/// (without the NUL), or −1 for a bad handle. A caller with too small a buffer calls again.
@_cdecl("kiln_session_metadata")
public func kiln_session_metadata(_ handle: UnsafeMutableRawPointer?, _ json: UnsafeMutablePointer<CChar>?, _ capacity: Int64) -> Int64 {
    guard let s = session(handle) else { return -1 }
    let data = (try? JSONSerialization.data(withJSONObject: s.graph.metadata, options: [.sortedKeys])) ?? Data("{}".utf8)
    if let json, capacity > Int64(data.count) {
        let bytes = [UInt8](data)
        for (i, b) in bytes.enumerated() { json[i] = CChar(bitPattern: b) }
        json[bytes.count] = 0
    }
    return Int64(data.count)
}

/// Runs the model on `batch` images: `inputs[i]` holds input i (f32, its shape with the
/// batch), `outputs[j]` receives output j (f32; `outputCounts[j]` floats of room). Returns 0,
/// or 1 with the message in `message`. Inputs are copied into the compiled model's arena and
/// outputs out of it (the arena is reused by the next run).
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
        let start = DispatchTime.now().uptimeNanoseconds
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
        s.lastRunSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return 0
    } catch {
        report(describe(error), message, messageCapacity)
        return 1
    }
}

/// Seconds the last finished run spent inside Kiln (copying in, executing, copying out; not
/// the first run's compilation): what a caller's own overhead is measured against.
@_cdecl("kiln_session_last_run_seconds")
public func kiln_session_last_run_seconds(_ handle: UnsafeMutableRawPointer?) -> Double {
    guard let s = session(handle) else { return -1 }
    s.lock.lock()
    defer { s.lock.unlock() }
    return s.lastRunSeconds
}

nonisolated(unsafe) let versionString = strdup(kilnVersion)!

/// Kiln's version, as `kiln --version` prints it.
@_cdecl("kiln_version")
public func kiln_version() -> UnsafePointer<CChar> { UnsafePointer(versionString) }
