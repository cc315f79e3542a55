import ArgumentParser
import Foundation
import Graph
import Runtime

@main
struct Kiln: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Compile, run and train image classifiers on the CPU, with long-tailed data in mind.",
        discussion: """
            Kiln reads networks as text IR (.kiln files, see docs/IR.md) or ONNX.
            Start with:

              kiln dump models/resnet32-cifar.kiln --stats   # parameters, FLOPs
              kiln dump models/resnet8-mnist.kiln            # the text IR
              kiln models resnet50 > my-resnet50.kiln        # a built-in network

            Train LDAM-DRW on the long-tailed MNIST sample, then export to ONNX:

              kiln train --model models/resnet8-mnist.kiln \\
                --data data/mnist5k/mnist5k-images-idx3-ubyte.gz \\
                --split-first 400 --lt-profile exp --lt-ratio 100 \\
                --loss ldam --rule drw --epochs 100 --crop-padding 2 \\
                --out runs/ldam-drw
              kiln export runs/ldam-drw -o ldam-drw.onnx

            Run `kiln help SUBCOMMAND` for the options of each subcommand.
            """,
        version: kilnVersion,
        subcommands: [Dump.self, Run.self, Bench.self, TrainCommand.self, ExportCommand.self, QuantizeCommand.self, Infer.self, Eval.self, PreprocessCommand.self, Convert.self, Models.self, Conformance.self, Peak.self, ReportCommand.self]
    )
}

/// Prints `kiln: error: …` on stderr and exits non-zero: the one way the CLI reports failure.
/// In a distributed job the error names the rank and ends every rank (MPI_Abort), so that no
/// rank waits forever for one that stopped.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    if let cluster = try? Cluster.start(), cluster.isDistributed { cluster.abort(message, code: code) }
    writeStderr("kiln: error: \(message)\n")
    return ExitCode(code)
}

/// Runs `body`, turning any error into one line on stderr and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        // A KILN_ISA the CPU cannot honour would measure or test another level than asked for.
        if let problem = KernelLevel.error { throw CLIError(problem) }
        try body()
    } catch let e as ExitCode {
        throw e
    } catch let e as GraphError {
        throw fail(e.description)
    } catch let e as CLIError {
        throw fail(e.message)
    } catch {
        throw fail("\(error)")
    }
}

struct CLIError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// `kiln: note: …` on stderr: something the user should know that is not an error. In an
/// mpirun job only rank 0 says it (every rank would say the same).
func printNote(_ s: String) {
    guard isFirstRank else { return }
    writeStderr("kiln: note: \(s)\n")
}

/// Whether this process is rank 0 of an mpirun job, or not in one (from mpirun's environment,
/// without starting MPI).
let isFirstRank = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"].map { $0 == "0" } ?? true

/// Writes to stdout, ignoring a closed pipe (`kiln dump … | head`).
func emit(_ s: String) {
    // Under mpirun every rank would print the same: rank 0 speaks for the job.
    guard isFirstRank else { return }
    var s = s
    let e = s.withUTF8 { writeFully(1, UnsafeRawBufferPointer($0)) }
    if e != 0 {
        writeStderr("kiln: error: cannot write the output: \(String(cString: strerror(e)))\n")
        exit(1)
    }
}
