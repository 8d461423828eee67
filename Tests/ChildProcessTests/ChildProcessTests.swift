import ChildProcess
import Foundation
import Testing
import WaybillTestSupport

@Suite struct ChildProcessTests {
    @Test func runReturnsTheExitStatusAndBothOutputStreams() async throws {
        let (termination, output) = try await ChildProcess.run(
            "/bin/sh", arguments: ["-c", "echo out; echo err >&2; exit 3"])
        #expect(termination == .exited(3))
        #expect(termination.shellStatus == 3)
        #expect(output == "out\nerr\n")
    }

    @Test func theChildGetsExactlyTheGivenEnvironmentAndWorkingDirectory() async throws {
        let directory = try TemporaryDirectory()
        let (termination, output) = try await ChildProcess.run(
            "/bin/sh", arguments: ["-c", #"echo "$ONLY ${HOME-unset}"; /bin/pwd -P"#], environment: ["ONLY": "given"],
            workingDirectory: directory.path)
        #expect(termination == .exited(0))
        let real = try #require(realpath(directory.path, nil))
        defer { free(real) }
        #expect(output == "given unset\n\(String(cString: real))\n")
    }

    /// `scripts/rabbitmq start` leaves the node and epmd running with the script's output descriptors; the script's
    /// end must still be seen. Here the left-behind `sleep` outlives the timeout, so waiting for it would fail the test.
    @Test func aProgramThatLeavesADaemonBehindStillEnds() async throws {
        let (termination, output) = try await ChildProcess.run(
            "/bin/sh", arguments: ["-c", "sleep 60 & echo $!"], timeout: .seconds(20))
        let daemon = try #require(pid_t(output.trimmingCharacters(in: .whitespacesAndNewlines)), "\(output)")
        kill(daemon, SIGKILL)
        #expect(termination == .exited(0))
    }

    @Test func aSignalEndsTheChildAndEveryWaiterSeesIt() async throws {
        let directory = try TemporaryDirectory()
        let child = try ChildProcess(executable: "/bin/sleep", arguments: ["60"], output: directory.file("child.log"))
        #expect(child.ended == nil)
        #expect(try await child.waitForExit(timeout: .milliseconds(50)) == nil, "still running")
        async let first = child.waitForExit()
        async let second = child.waitForExit()
        child.send(SIGTERM)
        #expect(try await first == .signaled(SIGTERM))
        #expect(try await second == .signaled(SIGTERM))
        #expect(child.ended == .signaled(SIGTERM))
        #expect(child.ended?.shellStatus == 128 + SIGTERM)
        child.send(SIGKILL)  // ended: nothing is sent to a pid that may be reused
        #expect(try await child.waitForExit() == .signaled(SIGTERM))
    }

    @Test func aCancelledWaitThrowsAndLeavesTheChildRunning() async throws {
        let directory = try TemporaryDirectory()
        let child = try ChildProcess(executable: "/bin/sleep", arguments: ["60"], output: directory.file("child.log"))
        let wait = Task { try await child.waitForExit() }
        wait.cancel()
        await #expect(throws: CancellationError.self) { try await wait.value }
        #expect(child.ended == nil)
        child.send(SIGKILL)
        #expect(try await child.waitForExit() == .signaled(SIGKILL))
    }

    @Test func runKillsAProgramThatOutlivesItsTimeout() async throws {
        let error = await #expect(throws: ChildProcessError.self) {
            try await ChildProcess.run("/bin/sleep", arguments: ["60"], timeout: .milliseconds(100))
        }
        #expect(error?.code == .timedOut)
    }

    /// A script that is still open for writing somewhere (here in this process; in the suite, inherited by a child
    /// that another test was spawning) cannot be executed (ETXTBSY); the start waits for the writer to let go.
    @Test func aScriptStillOpenForWritingStartsOnceTheWriterLetsGo() async throws {
        let directory = try TemporaryDirectory()
        let script = directory.file("busy.sh")
        let writer = open(script, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
        try #require(writer >= 0)
        let body = Array("#!/bin/sh\necho started\n".utf8)
        #expect(write(writer, body, body.count) == body.count)
        let closer = Thread {
            usleep(30_000)
            close(writer)
        }
        closer.start()
        let (termination, output) = try await ChildProcess.run(script, timeout: .seconds(20))
        #expect(termination == .exited(0))
        #expect(output == "started\n")
    }

    @Test func aMissingProgramCannotStart() async throws {
        let error = #expect(throws: ChildProcessError.self) {
            try ChildProcess(executable: "/nonexistent/waybill-no-such-program", output: "/dev/null")
        }
        #expect(error?.code == .cannotStart)
        #expect(error?.code.rawValue == "process.cannot_start")
        #expect(
            error?.description.hasPrefix(
                "process.cannot_start: cannot start /nonexistent/waybill-no-such-program; check that it exists")
                == true, "\(String(describing: error))")
    }
}
