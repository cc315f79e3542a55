import ArgumentParser
import CKernels
import Foundation
import Runtime

extension Kiln {
    struct Peak: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure this CPU's arithmetic peak: fp32 multiply-adds, int8 and bf16 dot products.",
            discussion: """
                Runs register-only loops (independent accumulators, no memory traffic) with the widest instructions the CPU has — AVX-512 or AVX2 FMA for fp32; AVX-512 VNNI vpdpbusd, or AVX2 vpmaddubsw + vpmaddwd, for uint8·int8; AVX-512 BF16 vdpbf16ps for bf16 — on one thread and on --threads threads at once, and prints GOP/s (a multiply-add counts 2; medians of 3) and each rate against fp32's. This is the ceiling a kernel of that type can reach here: int8 or bf16 kernels pay by arithmetic only where their rate is above fp32's, and otherwise only where memory traffic limits.

                Examples:
                  kiln peak
                  kiln peak --threads 1 --seconds 1
                """
        )

        @Option(help: "Threads for the all-threads column (default: all cores).")
        var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "Seconds per measurement.")
        var seconds: Double = 0.3

        func validate() throws {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
            guard seconds > 0 && seconds <= 60 else { throw ValidationError("--seconds must be in (0, 60]") }
        }

        /// The instructions `kind` runs on here, and whether the CPU has any.
        static func instructions(_ kind: Int32) -> (String, Bool) {
            var how: UnsafePointer<CChar>? = nil
            let ops = kiln_peak_run(kind, 1000, &how)
            return (how.map { String(cString: $0) } ?? "", ops > 0)
        }

        /// Operations per second of `kind` on `threads` threads running at once (median of 3).
        static func rate(_ kind: Int32, threads: Int, seconds: Double) -> Double {
            var how: UnsafePointer<CChar>? = nil
            // Iterations for about `seconds` on one thread.
            var iterations = 1000
            while true {
                let t = DispatchTime.now().uptimeNanoseconds
                _ = kiln_peak_run(kind, iterations, &how)
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
                if elapsed > seconds / 10 || iterations > 1 << 40 {
                    iterations = max(1000, Int(Double(iterations) * seconds / max(elapsed, 1e-9)))
                    break
                }
                iterations *= 8
            }
            let n = iterations
            var rates: [Double] = []
            for _ in 0..<3 {
                let ops = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
                defer { ops.deallocate() }
                let out = UnsafeSendable(ops.baseAddress!)
                let t = DispatchTime.now().uptimeNanoseconds
                DispatchQueue.concurrentPerform(iterations: threads) { k in
                    var h: UnsafePointer<CChar>? = nil
                    out.value[k] = kiln_peak_run(kind, n, &h)
                }
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
                rates.append(ops.reduce(0, +) / elapsed)
            }
            return rates.sorted()[1]
        }

        func run() throws {
            try reportingErrors {
                print("CPU: \(CPUIdentity.modelName), \(ProcessInfo.processInfo.activeProcessorCount) logical cores")
                let header = "type  instructions" + String(repeating: " ", count: 38) + "1 thread  \(threads) thread\(threads == 1 ? "" : "s")   × fp32"
                print(header)
                var fp32: Double? = nil
                for (kind, label) in [(Int32(KILN_PEAK_FP32.rawValue), "fp32"), (Int32(KILN_PEAK_INT8.rawValue), "int8"), (Int32(KILN_PEAK_BF16.rawValue), "bf16")] {
                    let (name, available) = Self.instructions(kind)
                    guard available else { print("\(label)  \(name)"); continue }
                    let one = Self.rate(kind, threads: 1, seconds: seconds)
                    let all = threads == 1 ? one : Self.rate(kind, threads: threads, seconds: seconds)
                    if kind == Int32(KILN_PEAK_FP32.rawValue) { fp32 = all }
                    let padded = name.padding(toLength: 48, withPad: " ", startingAt: 0)
                    print(String(format: "%@  %@%8.1f %10.1f GOP/s  %5.2f", label, padded, one / 1e9, all / 1e9, all / (fp32 ?? all)))
                }
            }
        }
    }
}
