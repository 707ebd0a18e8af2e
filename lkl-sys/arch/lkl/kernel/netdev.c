// SPDX-License-Identifier: GPL-2.0-only
/*
 * Network devices backed by the host.
 *
 * The interface is L3 and point-to-point (ARPHRD_NONE, NOARP): packets are
 * bare IP, as on OpenVZ's venet0 or a tun device, and whatever link layer
 * the host interface has is the host backend's business. No ARP or
 * neighbour discovery ever leaves the kernel through it.
 *
 * tx hands packets to the host synchronously, as iovecs over the skbs'
 * data and fragments, a batch at a time when the stack has several. rx is
 * NAPI: the host raises the device's irq when packets wait, the poll
 * function has the host deliver a budget of them (from a ring it shares
 * with its own kernel, say), copies each into an skb and re-arms the host
 * when drained.
 *
 * Threads about to wait poll the NAPI themselves (busy_poll.c). While they
 * do, the host is not re-armed: its wake-ups would only race them for the
 * packets. That lasts until the last busy poller gives up and sleeps, or,
 * should the last one leave with its data and not come back to wait,
 * LKL_BUSY_SUSPEND_NS after its last poll (as Linux's irq suspension does).
 *
 * Kernels that share listeners with others (a pre-fork server's processes,
 * each with a kernel of its own) get every segment of every connection of
 * them; while the host says so, rx drops those of connections this kernel
 * does not have before the stack sees them (lkl_netdev_foreign).
 */
#include <linux/hrtimer.h>
#include <linux/if_arp.h>
#include <linux/interrupt.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/skbuff.h>
#include <linux/virtio_net.h>
#include <net/checksum.h>
#include <net/inet_hashtables.h>
#include <net/inet6_hashtables.h>
#include <net/tcp.h>
#include "internal.h"

/* The header, the linear part and each page fragment. */
#define LKL_TX_IOVS	(2 + MAX_SKB_FRAGS)
/* Packets handed to the host in one call while the stack says more follow. */
#define LKL_TX_BATCH	16
/*
 * How long after a busy poll the host stays disarmed if no thread waits:
 * long enough for a server to answer and wait again, short enough that
 * packets for threads that sleep meanwhile are not held up for long, and
 * the timer that ends it seldom fires while busy pollers come back.
 */
#define LKL_BUSY_SUSPEND_NS	(500 * NSEC_PER_USEC)

/* Packets on their way to the host, under the tx queue's lock. */
struct lkl_tx_batch {
	struct sk_buff *skb[LKL_TX_BATCH];
	struct virtio_net_hdr hdr[LKL_TX_BATCH];
	int cnt[LKL_TX_BATCH];
	struct lkl_iovec iov[LKL_TX_BATCH * LKL_TX_IOVS];
	int n;
	int iovs;
};

struct lkl_netdev_priv {
	struct lkl_netdev *nd;
	struct napi_struct napi;
	/* polls again later when no skb could be had (see lkl_netdev_poll) */
	struct timer_list refill;
	bool starved;
	/* when a busy poller last polled, 0 when none does (see the top) */
	u64 busy_ns;
	struct hrtimer resume;
	struct lkl_tx_batch tx;
};

/* The largest coalesced packet the host may hand over (an IP datagram). */
#define LKL_RX_MAX	65535

/*
 * With NETIF_F_SG and a checksum feature TCP builds 64 KiB GSO skbs. When
 * the host takes them (LKL_NETDEV_TSO) they go out whole, checksum left
 * partial, the virtio_net_hdr saying how to finish; otherwise the stack
 * segments them in software just before this point and a partial checksum
 * is completed here, in one pass over the data. Either way the payload is
 * in page fragments, handed to the host as iovecs without a copy.
 */
static int lkl_tx_add(struct lkl_netdev_priv *priv, struct sk_buff *skb)
{
	struct lkl_tx_batch *b = &priv->tx;
	struct virtio_net_hdr *hdr = &b->hdr[b->n];
	struct lkl_iovec *iov = &b->iov[b->iovs];
	int i, n = 0;

	if (skb->ip_summed == CHECKSUM_PARTIAL &&
	    !(priv->nd->offloads & LKL_NETDEV_TSO) && skb_checksum_help(skb))
		return -EINVAL;
	if ((skb_has_frag_list(skb) && skb_linearize(skb)) ||
	    virtio_net_hdr_from_skb(skb, hdr, true, false, 0))
		return -EINVAL;

	iov[n].iov_base = hdr;
	iov[n++].iov_len = sizeof(*hdr);
	iov[n].iov_base = skb->data;
	iov[n++].iov_len = skb_headlen(skb);
	for (i = 0; i < skb_shinfo(skb)->nr_frags; i++) {
		const skb_frag_t *frag = &skb_shinfo(skb)->frags[i];

		iov[n].iov_base = skb_frag_address(frag);
		iov[n++].iov_len = skb_frag_size(frag);
	}
	b->skb[b->n] = skb;
	b->cnt[b->n++] = n;
	b->iovs += n;
	return 0;
}

static void lkl_tx_flush(struct net_device *dev, struct lkl_netdev_priv *priv)
{
	struct lkl_tx_batch *b = &priv->tx;
	int i, sent;

	sent = priv->nd->ops->tx(priv->nd, b->iov, b->cnt, b->n);
	if (sent < 0)
		sent = 0;
	dev->stats.tx_packets += sent;
	dev->stats.tx_dropped += b->n - sent;
	for (i = 0; i < b->n; i++) {
		dev->stats.tx_bytes += b->skb[i]->len;
		dev_consume_skb_any(b->skb[i]);
	}
	b->n = 0;
	b->iovs = 0;
}

/*
 * The stack says when more packets follow at once (the segments of a GSO
 * packet, say): those wait here, and the host gets them in one call.
 */
static netdev_tx_t lkl_netdev_xmit(struct sk_buff *skb,
				   struct net_device *dev)
{
	struct lkl_netdev_priv *priv = netdev_priv(dev);

	if (lkl_tx_add(priv, skb)) {
		dev->stats.tx_dropped++;
		dev_kfree_skb_any(skb);
	}
	if (priv->tx.n == LKL_TX_BATCH || (priv->tx.n && !netdev_xmit_more()))
		lkl_tx_flush(dev, priv);
	return NETDEV_TX_OK;
}

/*
 * Whether the bare IP packet is a TCP segment, other than a new
 * connection's SYN, of a connection (or request) that this kernel does not
 * have (see lkl_netdev.own_only). A time-wait socket has only a FIN sent
 * again: the peer's port may already carry a new connection that another
 * kernel took, whose segments this one would answer with resets.
 */
static bool lkl_netdev_foreign(struct net_device *dev, const u8 *p,
			       unsigned int len)
{
	struct inet_hashinfo *hashinfo;
	const struct tcphdr *th;
	struct net *net = dev_net(dev);
	struct sock *sk = NULL;
	unsigned int thoff;
	bool foreign;

	hashinfo = net->ipv4.tcp_death_row.hashinfo;
	if (p[0] >> 4 == 4) {
		const struct iphdr *iph = (const struct iphdr *)p;

		thoff = iph->ihl * 4;
		if (len < sizeof(*iph) || thoff < sizeof(*iph) ||
		    iph->protocol != IPPROTO_TCP ||
		    (iph->frag_off & htons(IP_OFFSET)) ||
		    len < thoff + sizeof(*th))
			return false;
		th = (const struct tcphdr *)(p + thoff);
		if (th->syn && !th->ack)
			return false;
		rcu_read_lock();
		sk = __inet_lookup_established(net, hashinfo, iph->saddr,
					       th->source, iph->daddr,
					       ntohs(th->dest), dev->ifindex,
					       0);
		rcu_read_unlock();
#if IS_ENABLED(CONFIG_IPV6)
	} else if (p[0] >> 4 == 6) {
		const struct ipv6hdr *ip6h = (const struct ipv6hdr *)p;

		thoff = sizeof(*ip6h);
		if (len < thoff + sizeof(*th) || ip6h->nexthdr != IPPROTO_TCP)
			return false;
		th = (const struct tcphdr *)(p + thoff);
		if (th->syn && !th->ack)
			return false;
		rcu_read_lock();
		sk = __inet6_lookup_established(net, hashinfo, &ip6h->saddr,
						th->source, &ip6h->daddr,
						ntohs(th->dest), dev->ifindex,
						0);
		rcu_read_unlock();
#endif
	} else {
		return false;
	}
	if (!sk)
		return true;
	foreign = sk->sk_state == TCP_TIME_WAIT && !th->fin;
	sock_gen_put(sk);
	return foreign;
}

/*
 * Takes one packet the host delivers (see lkl_netdev_ops.rx) into an skb of
 * its own size, copied out of host memory. The buffer is kmalloc'ed, not a
 * napi_alloc_skb fragment of a 32 KiB page: a page stays allocated while
 * any of its fragments is queued on some socket, and hundreds of sockets
 * each holding a few packets then pin far more memory than their truesize
 * says, more than TCP's limits can see, until a small kernel runs out.
 *
 * A packet whose checksum the host neither verified nor left partial is
 * summed while it is copied (CHECKSUM_COMPLETE, as NICs do), so the stack
 * verifies it without another pass over the data.
 */
static int lkl_netdev_deliver(void *ctx, const void *vnet_hdr,
			      const void *packet, unsigned int len)
{
	struct lkl_netdev_priv *priv = ctx;
	struct net_device *dev = priv->napi.dev;
	struct virtio_net_hdr hdr;
	struct sk_buff *skb;

	memcpy(&hdr, vnet_hdr, sizeof(hdr));
	if (!len || len > LKL_RX_MAX) {
		dev->stats.rx_length_errors++;
		return 0;
	}
	if (priv->nd->own_only && READ_ONCE(*priv->nd->own_only) &&
	    lkl_netdev_foreign(dev, packet, len)) {
		dev_core_stats_rx_nohandler_inc(dev);
		return LKL_NETDEV_FOREIGN;
	}
	skb = alloc_skb(NET_SKB_PAD + NET_IP_ALIGN + len,
			GFP_ATOMIC | __GFP_NOWARN);
	if (!skb) {
		dev->stats.rx_dropped++;
		priv->starved = true;
		return -ENOMEM;
	}
	skb_reserve(skb, NET_SKB_PAD + NET_IP_ALIGN);
	skb->dev = dev;
	if (hdr.flags & (VIRTIO_NET_HDR_F_NEEDS_CSUM |
			 VIRTIO_NET_HDR_F_DATA_VALID)) {
		skb_put_data(skb, packet, len);
	} else {
		skb->csum = csum_partial_copy_nocheck(packet, skb_put(skb, len),
						      len);
		skb->ip_summed = CHECKSUM_COMPLETE;
	}

	switch (skb->data[0] >> 4) {
	case 4:
		skb->protocol = htons(ETH_P_IP);
		break;
	case 6:
		skb->protocol = htons(ETH_P_IPV6);
		break;
	default:
		dev->stats.rx_frame_errors++;
		goto drop;
	}
	skb_reset_mac_header(skb);
	skb_reset_network_header(skb);
	if (virtio_net_hdr_to_skb(skb, &hdr, true)) {
		dev->stats.rx_frame_errors++;
		goto drop;
	}
	/* the helper leaves this flag to the driver, as virtio-net does */
	if (hdr.flags & VIRTIO_NET_HDR_F_DATA_VALID)
		skb->ip_summed = CHECKSUM_UNNECESSARY;

	dev->stats.rx_packets++;
	dev->stats.rx_bytes += len;
	napi_gro_receive(&priv->napi, skb);
	return 0;
drop:
	kfree_skb(skb);
	return 0;
}

/* The device busy pollers poll; lkl has one, more only in tests. */
static struct lkl_netdev_priv *lkl_busy_dev;

unsigned int lkl_netdev_napi_id(void)
{
	struct lkl_netdev_priv *priv = READ_ONCE(lkl_busy_dev);

	return priv ? READ_ONCE(priv->napi.napi_id) : 0;
}

/* The host stays disarmed while busy polling goes on; see the top. */
static bool lkl_netdev_suspended(struct lkl_netdev_priv *priv)
{
	if (!priv->busy_ns)
		return false;
	if (!hrtimer_is_queued(&priv->resume))
		hrtimer_start(&priv->resume,
			      ns_to_ktime(priv->busy_ns + LKL_BUSY_SUSPEND_NS),
			      HRTIMER_MODE_ABS);
	return true;
}

/*
 * Fires at most once per LKL_BUSY_SUSPEND_NS while busy polling goes on,
 * not at every poll: re-arming a host timer wakes the host's timer thread.
 */
static enum hrtimer_restart lkl_netdev_resume(struct hrtimer *t)
{
	struct lkl_netdev_priv *priv = container_of(t, typeof(*priv), resume);
	u64 until = priv->busy_ns + LKL_BUSY_SUSPEND_NS;

	if (priv->busy_ns && ktime_get_ns() < until) {
		hrtimer_set_expires(t, ns_to_ktime(until));
		return HRTIMER_RESTART;
	}
	priv->busy_ns = 0;
	/* the poll re-arms the host */
	napi_schedule(&priv->napi);
	return HRTIMER_NORESTART;
}

/* A busy poller gives up and sleeps: packets must wake it again. */
void lkl_netdev_busy_end(void)
{
	struct lkl_netdev_priv *priv = READ_ONCE(lkl_busy_dev);

	if (!priv || !priv->busy_ns)
		return;
	priv->busy_ns = 0;
	/* else whoever has the NAPI re-arms when done */
	if (!test_bit(NAPI_STATE_SCHED, &priv->napi.state))
		priv->nd->ops->rx_arm(priv->nd);
}

static int lkl_netdev_poll(struct napi_struct *napi, int budget)
{
	struct lkl_netdev_priv *priv = container_of(napi, typeof(*priv), napi);
	struct net_device *dev = napi->dev;
	int done;

	if (test_bit(NAPI_STATE_IN_BUSY_POLL, &napi->state))
		priv->busy_ns = ktime_get_ns();
	priv->starved = false;
	done = priv->nd->ops->rx(priv->nd, budget, lkl_netdev_deliver, priv);
	if (done < 0) {
		dev->stats.rx_errors++;
		done = 0;
	}

	if (done < budget && napi_complete_done(napi, done)) {
		/*
		 * Out of memory with packets waiting: re-arming would raise
		 * the irq at once and spin. Like a NIC driver that cannot
		 * refill its ring, try again a tick later.
		 */
		if (priv->starved)
			mod_timer(&priv->refill, jiffies + 1);
		else if (!lkl_netdev_suspended(priv))
			priv->nd->ops->rx_arm(priv->nd);
	}
	return done;
}

static void lkl_netdev_refill(struct timer_list *t)
{
	struct lkl_netdev_priv *priv = from_timer(priv, t, refill);

	napi_schedule(&priv->napi);
}

static irqreturn_t lkl_netdev_irq(int irq, void *dev_id)
{
	struct lkl_netdev_priv *priv = dev_id;

	napi_schedule(&priv->napi);
	return IRQ_HANDLED;
}

static int lkl_netdev_open(struct net_device *dev)
{
	struct lkl_netdev_priv *priv = netdev_priv(dev);

	napi_enable(&priv->napi);
	netif_start_queue(dev);
	/* packets may have queued up while the device was down */
	napi_schedule(&priv->napi);
	return 0;
}

static int lkl_netdev_stop(struct net_device *dev)
{
	struct lkl_netdev_priv *priv = netdev_priv(dev);

	netif_stop_queue(dev);
	napi_disable(&priv->napi);
	del_timer_sync(&priv->refill);
	hrtimer_cancel(&priv->resume);
	priv->busy_ns = 0;
	return 0;
}

static const struct net_device_ops lkl_netdev_ops = {
	.ndo_open	= lkl_netdev_open,
	.ndo_stop	= lkl_netdev_stop,
	.ndo_start_xmit	= lkl_netdev_xmit,
};

static void lkl_netdev_setup(struct net_device *dev)
{
	dev->netdev_ops = &lkl_netdev_ops;
	dev->type = ARPHRD_NONE;
	dev->hard_header_len = 0;
	dev->addr_len = 0;
	dev->flags = IFF_NOARP | IFF_POINTOPOINT;
	dev->tx_queue_len = 1000;
	dev->min_mtu = 68;
	dev->max_mtu = 65535;
	dev->needs_free_netdev = true;
	/* See lkl_netdev_xmit: software GSO, zero-copy fragments. */
	dev->hw_features = NETIF_F_SG | NETIF_F_HW_CSUM;
	dev->features = dev->hw_features;
}

int lkl_netdev_add(struct lkl_netdev *nd, const char *name)
{
	struct lkl_netdev_priv *priv;
	struct net_device *dev;
	int irq, ret;

	if (!nd || !nd->ops || nd->mtu < 68 || nd->mtu > 65535)
		return -EINVAL;

	ret = lkl_kernel_enter();
	if (ret < 0)
		return ret;

	ret = -ENOMEM;
	dev = alloc_netdev(sizeof(*priv), name ? name : "eth%d",
			   NET_NAME_USER, lkl_netdev_setup);
	if (!dev)
		goto out;
	dev->mtu = nd->mtu;
	if (nd->offloads & LKL_NETDEV_TSO) {
		dev->hw_features |= NETIF_F_TSO | NETIF_F_TSO6 | NETIF_F_TSO_ECN;
		dev->features = dev->hw_features;
	}
	priv = netdev_priv(dev);
	priv->nd = nd;
	timer_setup(&priv->refill, lkl_netdev_refill, 0);
	hrtimer_init(&priv->resume, CLOCK_MONOTONIC, HRTIMER_MODE_ABS);
	priv->resume.function = lkl_netdev_resume;
	netif_napi_add(dev, &priv->napi, lkl_netdev_poll);

	irq = lkl_get_free_irq("net");
	if (irq < 0) {
		ret = irq;
		goto free_dev;
	}
	ret = request_irq(irq, lkl_netdev_irq, 0, dev->name, priv);
	if (ret)
		goto put_irq;

	ret = register_netdev(dev);
	if (ret)
		goto free_irq;
	nd->irq = irq;
	WRITE_ONCE(lkl_busy_dev, priv);
	ret = dev->ifindex;
	goto out;

free_irq:
	free_irq(irq, priv);
put_irq:
	lkl_put_irq(irq, "net");
free_dev:
	free_netdev(dev);
out:
	lkl_kernel_exit();
	return ret;
}
