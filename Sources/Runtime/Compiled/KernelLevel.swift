import CKernels

/// The instruction-set level the C kernels run at: chosen once at start-up, the best the CPU
/// supports (portable, avx2, avx512) unless the environment variable KILN_ISA names one.
public enum KernelLevel {
    /// "portable", "avx2" or "avx512".
    public static var name: String { String(cString: kiln_isa_name()) }
    /// The best level this CPU supports.
    public static var best: String { ["portable", "avx2", "avx512"][Int(kiln_isa_best())] }
    /// Why KILN_ISA could not be honoured (an unknown level, or one this CPU lacks), or nil.
    public static var error: String? { kiln_isa_error().map { String(cString: $0) } }
}
