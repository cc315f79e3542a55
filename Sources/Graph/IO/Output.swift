import Foundation

/// Writes all of `bytes` to the file descriptor, retrying interrupted and short writes;
/// returns the errno of a failure (ENOSPC on a full disk, EPIPE, …) or 0. Unlike
/// `FileHandle.write(_:)`, which stops the process on an error, a failure here is a value.
public func writeFully(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        done += n
    }
    return 0
}

/// A line for the user on stderr; a failure to write it is ignored (there is nowhere left
/// to report it).
public func writeStderr(_ s: String) {
    var s = s
    s.withUTF8 { _ = writeFully(2, UnsafeRawBufferPointer($0)) }
}

/// What a SIGINT or SIGTERM leaves behind: nothing. Commands that write files or start child
/// processes install the handler and register each temporary file (removed on a signal, so
/// no half-written file survives under any name) and child (terminated); the handler then
/// prints the command's one-line message and exits with 128 + the signal (130, 143).
public final class Interrupts: @unchecked Sendable {
    public static let shared = Interrupts()
    private let lock = NSLock()
    private var files = Set<String>()
    private var children: [Process] = []
    private var sources: [DispatchSourceSignal] = []
    private var message: (Int32) -> String = { sig in "stopped by \(sig == SIGINT ? "SIGINT" : "SIGTERM")" }

    /// Handles SIGINT and SIGTERM from now on (once; later calls only change the message).
    public func install(message: ((Int32) -> String)? = nil) {
        lock.lock()
        defer { lock.unlock() }
        if let message { self.message = message }
        guard sources.isEmpty else { return }
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in
                let text = cleanUp(sig)
                writeStderr("\nkiln: error: \(text)\n")
                // _exit, not exit: the other threads are still running kernels, and exit's
                // handlers (libraries' destructors: OpenBLAS frees its buffers) would run under
                // them — a run killed mid-step once ended in SIGSEGV instead of 143.
                fflush(nil)  // every stdio stream (print's buffered lines)
                _exit(128 + sig)
            }
            source.resume()
            sources.append(source)
        }
    }

    public func track(file: String) { lock.lock(); files.insert(file); lock.unlock() }
    public func untrack(file: String) { lock.lock(); files.remove(file); lock.unlock() }
    public func track(child: Process) { lock.lock(); children.append(child); lock.unlock() }

    /// Terminates the children and removes the files; returns the message for `sig`.
    @discardableResult
    public func cleanUp(_ sig: Int32 = SIGTERM) -> String {
        lock.lock()
        defer { lock.unlock() }
        for child in children where child.isRunning { child.terminate() }
        for file in files { unlink(file) }
        files.removeAll()
        return message(sig)
    }
}
