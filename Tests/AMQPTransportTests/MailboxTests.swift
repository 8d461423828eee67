import Foundation
import Glibc
import Testing

@testable import AMQPTransport

/// The mailbox between callers and the connection thread: a command from another thread wakes the thread's poll(); one
/// the connection thread submits itself does not, and waits for the look the thread takes before it polls.
struct MailboxTests {
    private static let command = Command.settle(DeliveryTag(value: 1, generation: 1, channel: 3), .ack(multiple: false))

    /// Whether the mailbox's eventfd would wake a poll() now.
    private static func wakes(_ mailbox: Mailbox) -> Bool {
        var descriptor = pollfd(fd: mailbox.wakeDescriptor, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) == 1
    }

    @Test("the connection thread's own commands are queued without a wake-up; another thread's wake it")
    func ownCommandsDoNotWakeTheThread() async throws {
        let mailbox = try Mailbox()
        mailbox.reopen()
        // On a thread of its own, as the connection thread: adopt, then submit.
        let own = await withCheckedContinuation { continuation in
            let thread = Thread {
                mailbox.adoptCurrentThread()
                let accepted = mailbox.submit(Self.command)
                continuation.resume(returning: (accepted, Self.wakes(mailbox), mailbox.hasCommands))
            }
            thread.start()
        }
        #expect(own.0, "accepted")
        #expect(!own.1, "the connection thread's own command wrote the eventfd")
        #expect(own.2, "the command waits in the mailbox")
        #expect(mailbox.takeAll().count == 1)
        #expect(!mailbox.hasCommands)

        // From this task's thread, which is not the connection thread: the eventfd wakes the poll.
        #expect(mailbox.submit(Self.command))
        #expect(Self.wakes(mailbox))
        #expect(mailbox.takeAll().count == 1)
        #expect(!Self.wakes(mailbox), "taking the commands clears the wake-up")

        // Shut down, the mailbox refuses.
        #expect(mailbox.shutDown().isEmpty)
        #expect(!mailbox.submit(Self.command))
    }
}
