import ArgumentParser
import Foundation
import WaybillHTTP
import WaybillWorker

/// `waybill health`: asks a running worker whether it is ready (or alive), for a container's HEALTHCHECK or a
/// supervisor; exits 0 when it is, 1 with the worker's reasons when it is not.
struct HealthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Ask a running worker whether it is ready; exit 0 if so, 1 otherwise.",
        discussion: """
            Reads the worker's /readyz (or /healthz with --live) at --address, else at WAYBILL_HTTP_ADDRESS, else at \
            127.0.0.1:9464; a worker bound to 0.0.0.0 is asked on loopback. Prints the worker's answer: why it is \
            not ready, or how many partitions it owns.

            Examples:
              waybill health
              waybill health --address 127.0.0.1:9465 --live
            """
    )

    @Option(help: ArgumentHelp("The worker's http_address (host:port).", valueName: "host:port"))
    var address: String?

    @Flag(help: "Only ask whether the process answers (/healthz), not whether it takes work.")
    var live = false

    @Option(help: ArgumentHelp("Give up after this many seconds.", valueName: "seconds"))
    var timeout: Int = 5

    func validate() throws {
        guard (1...300).contains(timeout) else { throw ValidationError("--timeout must be 1...300 seconds") }
        if let address {
            do {
                _ = try HTTPAddress(parsing: address)
            } catch {
                throw ValidationError("--address: \(error.message)")
            }
        }
    }

    func run() throws {
        let text = address ?? ProcessInfo.processInfo.environment["WAYBILL_HTTP_ADDRESS"] ?? "127.0.0.1:9464"
        if text.lowercased() == "off" {
            FileHandle.standardError.write(
                Data(
                    "waybill health: WAYBILL_HTTP_ADDRESS is off, so the worker serves no endpoints; pass --address\n"
                        .utf8))
            throw ExitCode(2)
        }
        let target: HTTPAddress
        do {
            target = try HTTPAddress(parsing: text)
        } catch {
            FileHandle.standardError.write(Data("waybill health: WAYBILL_HTTP_ADDRESS: \(error.message)\n".utf8))
            throw ExitCode(2)
        }
        let path = live ? "/healthz" : "/readyz"
        do {
            let answer = try HTTPProbe.get(path, at: target, timeout: .seconds(timeout))
            print(answer.body.trimmingCharacters(in: .whitespacesAndNewlines))
            if answer.status != 200 { throw ExitCode(1) }
        } catch let failure as HTTPProbe.Failure {
            FileHandle.standardError.write(Data("waybill health: \(failure)\n".utf8))
            throw ExitCode(1)
        }
    }
}
