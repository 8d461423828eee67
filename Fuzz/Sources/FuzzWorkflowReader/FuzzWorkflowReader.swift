import CFuzzDriver
import WaybillDefinition

/// One libFuzzer input: the bytes as a workflow file. Any outcome but a crash, a hang or a sanitizer report is fine:
/// the reader either loads the workflow or reports `file:line:column` diagnostics.
func fuzzWorkflowReader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let definition = try WorkflowLoader.load(yaml: text, file: "fuzz.yaml")
        _ = definition.steps.count
    } catch {
        _ = error.description
    }
    return 0
}

/// The program's entry (SwiftPM links every executable's `main` to this symbol): libFuzzer's driver, with this
/// target's callback.
@_cdecl("FuzzWorkflowReader_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzWorkflowReader(data, size) }
}
