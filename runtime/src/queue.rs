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

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::HashSet, time::Duration};

    /// Many senders and receivers on a small queue, so both sides wait again and again:
    /// every item arrives exactly once and no one is left waiting (a lost wake-up would
    /// hang the test, which the timeout turns into a failure).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_item_arrives_once_with_both_sides_waiting() {
        let (tx, rx) = bounded::<u64>(4);
        let senders: Vec<_> = (0..4u64)
            .map(|s| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..5_000 {
                        assert!(tx.send(s * 1_000_000 + i).await.is_ok());
                    }
                })
            })
            .collect();
        drop(tx);
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Ok(v) = rx.recv().await {
                        got.push(v);
                        if v % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    got
                })
            })
            .collect();
        drop(rx);
        let all = async {
            for s in senders {
                s.await.unwrap();
            }
            let mut seen = HashSet::new();
            for r in receivers {
                for v in r.await.unwrap() {
                    assert!(seen.insert(v), "{v} arrived twice");
                }
            }
            seen.len()
        };
        let n = tokio::time::timeout(Duration::from_secs(60), all).await;
        assert_eq!(n.ok(), Some(20_000));
    }

    #[tokio::test]
    async fn closing_refuses_senders_and_lets_receivers_drain() {
        let (tx, rx) = bounded::<u8>(2);
        let weak = tx.downgrade();
        assert!(tx.try_send(1).is_ok());
        assert!(rx.close());
        assert!(!rx.close(), "closed once");
        assert!(matches!(tx.try_send(2), Err(TrySendError::Closed(2))));
        assert_eq!(tx.send(3).await, Err(3));
        assert!(weak.upgrade().is_none(), "no sender from a closed queue");
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(rx.recv().await, Err(TryRecvError::Closed));
    }

    #[tokio::test]
    async fn the_last_sender_gone_ends_a_waiting_receiver() {
        let (tx, rx) = bounded::<u8>(1);
        let weak = tx.downgrade();
        let other = weak.upgrade().unwrap();
        let waiting = tokio::spawn(async move { rx.recv().await });
        drop(tx);
        // One thread: the receiver runs to its wait here.
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a sender is left");
        drop(other);
        assert_eq!(waiting.await.unwrap(), Err(TryRecvError::Closed));
        assert!(weak.upgrade().is_none());
    }

    #[tokio::test]
    async fn a_full_queue_wakes_its_sender_when_room_comes() {
        let (tx, rx) = bounded::<u8>(1);
        assert!(tx.try_send(1).is_ok());
        assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
        let sending = tokio::spawn(async move { tx.send(2).await });
        tokio::task::yield_now().await;
        assert_eq!(rx.recv().await, Ok(1));
        assert_eq!(sending.await.unwrap(), Ok(()));
        assert_eq!(rx.recv().await, Ok(2));
        assert_eq!(
            rx.recv().await,
            Err(TryRecvError::Closed),
            "its only sender is gone"
        );
    }

    /// A receiver woken for an item but dropped before taking it (a `select!`'s losing
    /// branch) passes the wake-up on: the other waiting receiver gets the item. One thread,
    /// so the order is the test's: the impatient one waits first and is woken first.
    #[tokio::test]
    async fn a_dropped_waiter_passes_its_wake_up_on() {
        let (tx, rx) = bounded::<u8>(4);
        let (rx1, rx2) = (rx.clone(), rx);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let impatient = tokio::spawn(async move {
            tokio::select! {
                biased;
                _ = stop_rx => None,
                v = rx1.recv() => Some(v),
            }
        });
        tokio::task::yield_now().await;
        let patient = tokio::spawn(async move { rx2.recv().await });
        tokio::task::yield_now().await;
        // Wakes the impatient one, which then stops before it takes the item.
        assert!(tx.try_send(9).is_ok());
        let _ = stop_tx.send(());
        assert_eq!(
            impatient.await.ok(),
            Some(None),
            "it stopped without the item"
        );
        let got = tokio::time::timeout(Duration::from_secs(10), patient).await;
        assert_eq!(got.ok().and_then(|r| r.ok()), Some(Ok(9)));
    }
}
