//! A stage's queue: a bounded channel of many senders and many receivers (the stage's
//! workers), with `async-channel`'s semantics and names, and no lock on its hot path.
//!
//! Why not `async-channel` itself: with event-listener 5.4 under it, every send takes the
//! receivers' waiter-list mutex (and a SeqCst fence) to wake a receiver, and every receive
//! takes the senders' one to wake a sender, whether anyone waits or not. That was 21% of
//! the throughput bench's time. Here each side counts the tasks waiting on it, and a send
//! or receive touches the other side's waiter list only when that count is not zero: a
//! fence and a load otherwise. Waiting itself still goes through `event-listener` (its
//! notifications pass to another waiter when a notified one is dropped, as a `select!`
//! does with the branch that lost).
//!
//! No lost wake-up: a waiter registers its listener, then counts itself, then looks at the
//! queue again; the other side changes the queue, then reads the count. With a SeqCst fence
//! between the write and the read on both sides, either the waiter sees the change or the
//! other side sees the waiter, whose listener is registered by then.
//!
//! The pipeline's outputs (`Running::outputs`) stay an `async_channel::Receiver`: that is
//! public API, read by the user's code.

use std::sync::{
    atomic::{fence, AtomicUsize, Ordering},
    Arc,
};

use concurrent_queue::{ConcurrentQueue, PopError, PushError};
use event_listener::{Event, EventListener};

pub(crate) use async_channel::{TryRecvError, TrySendError};

struct Channel<T> {
    queue: ConcurrentQueue<T>,
    /// Receivers waiting for an item, and their listeners.
    receivers_waiting: AtomicUsize,
    recv_ops: Event,
    /// Senders waiting for room, and their listeners.
    senders_waiting: AtomicUsize,
    send_ops: Event,
    sender_count: AtomicUsize,
    receiver_count: AtomicUsize,
}

impl<T> Channel<T> {
    /// Closes the queue and wakes everyone waiting on it; `true` if this call closed it.
    fn close(&self) -> bool {
        if self.queue.close() {
            self.send_ops.notify(usize::MAX);
            self.recv_ops.notify(usize::MAX);
            true
        } else {
            false
        }
    }

    /// After an item went in: wakes one more waiting receiver, if one waits.
    #[inline]
    fn pushed(&self) {
        fence(Ordering::SeqCst);
        if self.receivers_waiting.load(Ordering::Relaxed) > 0 {
            self.recv_ops.notify_additional(1);
        }
    }

    /// After an item came out: wakes one more waiting sender, if one waits.
    #[inline]
    fn popped(&self) {
        fence(Ordering::SeqCst);
        if self.senders_waiting.load(Ordering::Relaxed) > 0 {
            self.send_ops.notify_additional(1);
        }
    }
}

/// A queue of at most `cap` items (at least one).
pub(crate) fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let channel = Arc::new(Channel {
        queue: ConcurrentQueue::bounded(cap.max(1)),
        receivers_waiting: AtomicUsize::new(0),
        recv_ops: Event::new(),
        senders_waiting: AtomicUsize::new(0),
        send_ops: Event::new(),
        sender_count: AtomicUsize::new(1),
        receiver_count: AtomicUsize::new(1),
    });
    (
        Sender {
            channel: channel.clone(),
        },
        Receiver { channel },
    )
}

/// One side's count of waiting tasks, held while a task waits: it leaves the count when
/// the wait ends, however it ends (the future may be dropped).
struct Waiting<'a> {
    count: &'a AtomicUsize,
    listener: EventListener,
}

impl<'a> Waiting<'a> {
    /// Registers a listener on `event`, then counts the waiter in `count`.
    fn new(event: &Event, count: &'a AtomicUsize) -> Self {
        let listener = event.listen();
        count.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        Waiting { count, listener }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Release);
    }
}

pub(crate) struct Sender<T> {
    channel: Arc<Channel<T>>,
}

impl<T> Sender<T> {
    /// Puts `value` in now, or gives it back: `Full`, or `Closed` once the queue closed.
    #[inline]
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        match self.channel.queue.push(value) {
            Ok(()) => {
                self.channel.pushed();
                Ok(())
            }
            Err(PushError::Full(v)) => Err(TrySendError::Full(v)),
            Err(PushError::Closed(v)) => Err(TrySendError::Closed(v)),
        }
    }

    /// Puts `value` in, waiting for room; gives it back if the queue closes first.
    pub(crate) async fn send(&self, value: T) -> Result<(), T> {
        let mut value = value;
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            value = match self.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(v)) => return Err(v),
                Err(TrySendError::Full(v)) => v,
            };
            match waiting.take() {
                // Registered: the next look decides, then wait.
                None => {
                    waiting = Some(Waiting::new(
                        &self.channel.send_ops,
                        &self.channel.senders_waiting,
                    ))
                }
                Some(mut w) => {
                    (&mut w.listener).await;
                }
            }
        }
    }

    pub(crate) fn downgrade(&self) -> WeakSender<T> {
        WeakSender {
            channel: self.channel.clone(),
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.channel.sender_count.fetch_add(1, Ordering::Relaxed);
        Sender {
            channel: self.channel.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    /// The last sender gone closes the queue: receivers take what is left, then end.
    fn drop(&mut self) {
        if self.channel.sender_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.channel.close();
        }
    }
}

/// A sender that does not hold the queue open.
pub(crate) struct WeakSender<T> {
    channel: Arc<Channel<T>>,
}

impl<T> WeakSender<T> {
    /// A sender, unless the queue closed or every sender is gone.
    pub(crate) fn upgrade(&self) -> Option<Sender<T>> {
        if self.channel.queue.is_closed() {
            return None;
        }
        self.channel
            .sender_count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n > 0).then_some(n + 1)
            })
            .ok()
            .map(|_| Sender {
                channel: self.channel.clone(),
            })
    }
}

impl<T> Clone for WeakSender<T> {
    fn clone(&self) -> Self {
        WeakSender {
            channel: self.channel.clone(),
        }
    }
}

pub(crate) struct Receiver<T> {
    channel: Arc<Channel<T>>,
}

impl<T> Receiver<T> {
    /// The next item now: `Empty`, or `Closed` once the queue is closed and empty.
    #[inline]
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        match self.channel.queue.pop() {
            Ok(v) => {
                self.channel.popped();
                Ok(v)
            }
            Err(PopError::Empty) => Err(TryRecvError::Empty),
            Err(PopError::Closed) => Err(TryRecvError::Closed),
        }
    }

    /// The next item, waiting for one; `Err` once the queue is closed and empty.
    pub(crate) async fn recv(&self) -> Result<T, TryRecvError> {
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            match self.try_recv() {
                Err(TryRecvError::Empty) => {}
                r => return r,
            }
            match waiting.take() {
                None => {
                    waiting = Some(Waiting::new(
                        &self.channel.recv_ops,
                        &self.channel.receivers_waiting,
                    ))
                }
                Some(mut w) => {
                    (&mut w.listener).await;
                }
            }
        }
    }

    /// Closes the queue: senders are refused, receivers take what is left.
    pub(crate) fn close(&self) -> bool {
        self.channel.close()
    }

    pub(crate) fn len(&self) -> usize {
        self.channel.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.channel.queue.is_empty()
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.channel.receiver_count.fetch_add(1, Ordering::Relaxed);
        Receiver {
            channel: self.channel.clone(),
        }
    }
}

impl<T> Drop for Receiver<T> {
    /// The last receiver gone closes the queue: senders are refused.
    fn drop(&mut self) {
        if self.channel.receiver_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.channel.close();
        }
    }
}
