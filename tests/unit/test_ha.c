/*
 * test_ha.c - unit tests for hasync/ha.c, the role state machine, driven
 * with a fake clock: every transition of SPEC 6 and its exact timing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hasync_int.h"

#define T0		100000	/* fake monotonic start time, ms */
#define IV		100	/* advert interval, ms */
#define PRIO		100	/* our default priority */
#define MD		315	/* Master_Down for PRIO and IV: 300 + 156 x 100 / 1024 */

static bool	 preempt_allowed;	/* what fake_may_preempt answers */
static int	 preempt_asked;		/* how often it was asked */

static bool
fake_may_preempt(void *arg)
{
	(void)arg;
	preempt_asked++;
	return preempt_allowed;
}

/* A paired node, started at T0: BACKUP. */
static void
pair_start(struct ha *ha, int prio, bool preempt, bool (*may)(void *))
{
	struct ha_config c;
	unsigned int acts;

	memset(&c, 0, sizeof(c));
	c.priority = prio;
	c.interval_ms = IV;
	c.has_peer = true;
	c.preempt = preempt;
	c.may_preempt = may;
	ha_init(ha, &c);
	acts = ha_start(ha, T0);
	assert_int_equal(ha->role, HASYNC_BACKUP);
	assert_true(acts & HA_ACT_BECOME_BACKUP);
	assert_true(acts & HA_ACT_ADVERT);
}

static struct ha_advert
advert(enum hasync_role state, int prio, int addr_cmp)
{
	struct ha_advert a;

	a.state = state;
	a.priority = prio;
	a.interval_ms = IV;
	a.addr_cmp = addr_cmp;
	a.hears_us = true;
	return a;
}

/* Runs the timer from *now to until as heartbeat.c would; ORs the actions. */
static unsigned int
run_until(struct ha *ha, uint64_t *now, uint64_t until)
{
	unsigned int acts = 0;
	uint64_t d;

	for (;;) {
		d = ha_next_deadline(ha);
		if (d == HA_NEVER || d > until)
			break;
		assert_true(d >= *now);	/* deadlines never lie in the past */
		*now = d;
		acts |= ha_timeout(ha, *now);
	}
	*now = until;
	return acts;
}

/* A paired node that became MASTER through Master_Down, at T0 + MD. */
static void
pair_master(struct ha *ha, int prio, bool preempt)
{
	uint64_t now = T0;

	pair_start(ha, prio, preempt, NULL);
	run_until(ha, &now, T0 + 10 * IV);
	assert_int_equal(ha->role, HASYNC_MASTER);
}

static void
test_init_to_backup(void **state)
{
	struct ha ha;

	pair_start(&ha, PRIO, true, NULL);
	assert_int_equal(ha.prev_role, HASYNC_INIT);
	assert_int_equal(ha_advert_priority(&ha), PRIO);
	assert_int_equal(ha_next_deadline(&ha), T0 + IV);	/* first advert is due */
	assert_string_equal(ha_peer_state(&ha, T0), "unknown");
	assert_int_equal(ha.role_changes, 1);
	/* A second start changes nothing. */
	assert_int_equal(ha_start(&ha, T0 + 1), 0);
	assert_int_equal(ha.role_changes, 1);
}

static void
test_standalone_master_at_once(void **state)
{
	struct ha_config c = { .priority = PRIO, .interval_ms = IV, .has_peer = false };
	struct ha ha;
	unsigned int acts;
	const char *why;

	ha_init(&ha, &c);
	acts = ha_start(&ha, T0);
	assert_int_equal(ha.role, HASYNC_MASTER);
	assert_true(acts & HA_ACT_BECOME_MASTER);
	assert_true(acts & HA_ACT_GARP_BURST);
	assert_false(acts & HA_ACT_ADVERT);	/* nobody to tell */
	assert_int_equal(ha_next_deadline(&ha), HA_NEVER);
	assert_string_equal(ha_peer_state(&ha, T0), "none");
	assert_int_equal(ha_failover(&ha, T0, &why), 0);
	assert_non_null(strstr(why, "standalone"));
	assert_int_equal(ha_peer_lost(&ha, "x", T0), 0);
	assert_int_equal(ha.role, HASYNC_MASTER);
	acts = ha_stop(&ha, T0 + 5);
	assert_int_equal(acts, HA_ACT_BECOME_INIT);
	assert_int_equal(ha.role, HASYNC_INIT);
}

static void
test_master_down_boundary(void **state)
{
	struct ha ha;
	uint64_t now = T0;
	unsigned int acts;

	pair_start(&ha, PRIO, true, NULL);
	assert_int_equal(ha_master_down_interval(&ha), MD);
	/* Adverts every interval while waiting, and no takeover before MD. */
	acts = run_until(&ha, &now, T0 + MD - 1);
	assert_true(acts & HA_ACT_ADVERT);
	assert_false(acts & HA_ACT_BECOME_MASTER);
	assert_int_equal(ha.role, HASYNC_BACKUP);
	assert_int_equal(ha_timeout(&ha, T0 + MD - 1) & HA_ACT_BECOME_MASTER, 0);
	assert_int_equal(ha_next_deadline(&ha), T0 + MD);
	acts = ha_timeout(&ha, T0 + MD);
	assert_int_equal(ha.role, HASYNC_MASTER);
	assert_true(acts & HA_ACT_BECOME_MASTER);
	assert_true(acts & HA_ACT_GARP_BURST);
	assert_true(acts & HA_ACT_ADVERT);
	assert_int_equal(ha.prev_role, HASYNC_BACKUP);
	assert_non_null(strstr(ha.reason, "Master_Down"));
}

static void
test_master_down_uses_peer_interval_and_skew(void **state)
{
	struct ha ha;
	struct ha_advert a = advert(HASYNC_MASTER, 200, 1);

	/* A higher priority has a shorter skew: 300 + 56 x 100 / 1024 = 305. */
	pair_start(&ha, 200, false, NULL);
	assert_int_equal(ha_master_down_interval(&ha), 305);
	/* The peer's interval counts once it spoke: 3 x 50 + 56 x 50 / 1024 = 152. */
	a.interval_ms = 50;
	ha_rx_advert(&ha, &a, T0 + 10);
	assert_int_equal(ha_master_down_interval(&ha), 152);
	assert_int_equal(ha.master_down_ms, T0 + 10 + 152);
}

static void
test_backup_stays_while_master_adverts(void **state)
{
	struct ha ha;
	struct ha_advert a = advert(HASYNC_MASTER, 150, 1);
	uint64_t now = T0, t;

	pair_start(&ha, PRIO, true, NULL);
	/* A MASTER advert every interval for 5 s: never a takeover. */
	for (t = T0; t < T0 + 5000; t += IV) {
		assert_int_equal(run_until(&ha, &now, t) & HA_ACT_BECOME_MASTER, 0);
		ha_rx_advert(&ha, &a, t);
		assert_int_equal(ha.master_down_ms, t + MD);
	}
	assert_int_equal(ha.role, HASYNC_BACKUP);
	assert_string_equal(ha_peer_state(&ha, now), "alive");
	/* Then it stops: takeover exactly MD after the last advert. */
	t -= IV;
	run_until(&ha, &now, t + MD - 1);
	assert_int_equal(ha.role, HASYNC_BACKUP);
	run_until(&ha, &now, t + MD);
	assert_int_equal(ha.role, HASYNC_MASTER);
	assert_string_equal(ha_peer_state(&ha, now), "dead");
}

static void
test_backup_peer_does_not_hold_off(void **state)
{
	struct ha ha;
	struct ha_advert a = advert(HASYNC_BACKUP, 200, 1);
	uint64_t now = T0, t;

	/* Both BACKUP: a BACKUP advert does not restart Master_Down. */
	pair_start(&ha, PRIO, true, NULL);
	for (t = T0 + 10; t < T0 + MD; t += IV) {
		run_until(&ha, &now, t);
		assert_int_equal(ha_rx_advert(&ha, &a, t), 0);
	}
	run_until(&ha, &now, T0 + MD);
	assert_int_equal(ha.role, HASYNC_MASTER);
}

static void
test_master_stays_with_backup_adverts(void **state)
{
	struct ha ha;
	struct ha_advert a = advert(HASYNC_BACKUP, 200, 1);
	uint64_t now = T0 + 10 * IV, t, end = now + 3000;
	unsigned int acts = 0;

	pair_master(&ha, PRIO, true);
	for (t = now; t < end; t += IV) {
		acts |= run_until(&ha, &now, t);
		acts |= ha_rx_advert(&ha, &a, t);
	}
	assert_int_equal(ha.role, HASYNC_MASTER);
	assert_int_equal(acts & HA_ACT_ROLE_CHANGED, 0);
	assert_true(acts & HA_ACT_ADVERT);
	/* And without any peer advert at all, a MASTER stays MASTER. */
	run_until(&ha, &now, now + 60000);
	assert_int_equal(ha.role, HASYNC_MASTER);
}

static void
test_preempt_on(void **state)
{
	struct ha ha;
	struct ha_advert a = advert(HASYNC_MASTER, 100, -1);
	unsigned int acts;

	pair_start(&ha, 150, true, NULL);
	acts = ha_rx_advert(&ha, &a, T0 + 20);
	assert_int_equal(ha.role, HASYNC_MASTER);
	assert_true(acts & HA_ACT_BECOME_MASTER);
	assert_true(acts & HA_ACT_GARP_BURST);
	assert_non_null(strstr(ha.reason, "preempting"));
}

static void
test_preempt_equal_priority_does_not(void **state)
{
	struct ha ha;
	struct ha_advert a = advert(HASYNC_MASTER, 150, -1);

	/* VRRP: preemption needs a strictly higher priority, whatever the address. */
	pair_start(&ha, 150, true, NULL);
	assert_int_equal(ha_rx_advert(&ha, &a, T0 + 20), 0);
	assert_int_equal(ha.role, HASYNC_BACKUP);
}

static void
test_preempt_off(void **state)
{
	struct ha ha;
	struct ha_advert a = advert(HASYNC_MASTER, 100, -1);
	uint64_t now = T0, t;

	pair_start(&ha, 150, false, NULL);
	for (t = T0 + 20; t < T0 + 3000; t += IV) {
		run_until(&ha, &now, t);
		assert_int_equal(ha_rx_advert(&ha, &a, t) & HA_ACT_ROLE_CHANGED, 0);
	}
	assert_int_equal(ha.role, HASYNC_BACKUP);
}

/* A MASTER that does not hear us (its adverts echo none of our recent ones) is not preempted. */
static void
test_preempt_waits_until_heard(void **state)
{
	struct ha ha;
	struct ha_advert a = advert(HASYNC_MASTER, 100, -1);
	uint64_t now = T0, t;

	pair_start(&ha, 150, true, NULL);
	a.hears_us = false;
	for (t = T0 + 20; t < T0 + 1000; t += IV) {
		run_until(&ha, &now, t);
		assert_int_equal(ha_rx_advert(&ha, &a, t) & HA_ACT_ROLE_CHANGED, 0);
		assert_int_equal(ha.role, HASYNC_BACKUP);	/* nor Master_Down: it is alive */
	}
	a.hears_us = true;
	run_until(&ha, &now, t);
	assert_true(ha_rx_advert(&ha, &a, t) & HA_ACT_BECOME_MASTER);
	assert_non_null(strstr(ha.reason, "preempting"));
}

static void
test_may_preempt_blocks_until_true(void **state)
{
	struct ha ha;
	struct ha_advert a = advert(HASYNC_MASTER, 100, -1);
	uint64_t now = T0, t;

	preempt_allowed = false;
	preempt_asked = 0;
	pair_start(&ha, 150, true, fake_may_preempt);
	for (t = T0 + 20; t < T0 + 1000; t += IV) {
		run_until(&ha, &now, t);
		ha_rx_advert(&ha, &a, t);
		assert_int_equal(ha.role, HASYNC_BACKUP);
	}
	assert_true(preempt_asked >= 9);
	/* Bulk sync done: the MASTER's next advert lets us preempt. */
	preempt_allowed = true;
	run_until(&ha, &now, t);
	ha_rx_advert(&ha, &a, t);
	assert_int_equal(ha.role, HASYNC_MASTER);
	/* may_preempt does not hold off a takeover from a dead MASTER. */
	preempt_allowed = false;
	pair_start(&ha, 150, true, fake_may_preempt);
	now = T0;
	run_until(&ha, &now, T0 + ha_master_down_interval(&ha));
	assert_int_equal(ha.role, HASYNC_MASTER);
}

static void
test_priority_zero_immediate(void **state)
{
	struct ha ha;
	struct ha_advert m = advert(HASYNC_MASTER, 200, 1);
	struct ha_advert z = advert(HASYNC_MASTER, 0, 1);
	unsigned int acts;

	pair_start(&ha, PRIO, false, NULL);
	ha_rx_advert(&ha, &m, T0 + 10);
	acts = ha_rx_advert(&ha, &z, T0 + 20);
	assert_int_equal(ha.role, HASYNC_MASTER);
	assert_true(acts & HA_ACT_BECOME_MASTER);
	assert_true(acts & HA_ACT_GARP_BURST);
	assert_non_null(strstr(ha.reason, "priority 0"));

	/* The same from a peer in FAULT (it keeps advertising priority 0). */
	pair_start(&ha, PRIO, false, NULL);
	z.state = HASYNC_FAULT;
	ha_rx_advert(&ha, &z, T0 + 20);
	assert_int_equal(ha.role, HASYNC_MASTER);

	/* A MASTER ignores a leaving MASTER peer, but re-announces. */
	z.state = HASYNC_MASTER;
	acts = ha_rx_advert(&ha, &z, T0 + 20 + MD);
	assert_int_equal(ha.role, HASYNC_MASTER);
	assert_true(acts & HA_ACT_GARP_BURST);
}

/* Both MASTER; returns the actions of the advert from the other. */
static unsigned int
split_brain(struct ha *ha, int ours, int theirs, int addr_cmp)
{
	struct ha_advert a = advert(HASYNC_MASTER, theirs, addr_cmp);

	pair_master(ha, ours, true);
	return ha_rx_advert(ha, &a, T0 + 10 * IV + 5);
}

static void
test_split_brain_by_priority(void **state)
{
	struct ha ha;
	unsigned int acts;

	/* We win: stay, re-announce, and tell the loser at once. */
	acts = split_brain(&ha, 150, 100, 1);
	assert_int_equal(ha.role, HASYNC_MASTER);
	assert_true(acts & HA_ACT_GARP_BURST);
	assert_true(acts & HA_ACT_ADVERT);
	assert_int_equal(acts & HA_ACT_ROLE_CHANGED, 0);
	/* A loser that repeats itself gets no second burst within Master_Down. */
	{
		struct ha_advert a = advert(HASYNC_MASTER, 100, 1);

		acts = ha_rx_advert(&ha, &a, T0 + 10 * IV + 5 + IV);
		assert_false(acts & HA_ACT_GARP_BURST);
		assert_true(acts & HA_ACT_ADVERT);
	}
	/* We lose: step down, VIP removed. */
	acts = split_brain(&ha, 100, 150, -1);
	assert_int_equal(ha.role, HASYNC_BACKUP);
	assert_true(acts & HA_ACT_BECOME_BACKUP);
	assert_false(acts & HA_ACT_GARP_BURST);
	assert_non_null(strstr(ha.reason, "wins"));
	assert_int_equal(ha.master_down_ms, T0 + 10 * IV + 5 + MD);
}

/*
 * The partition heals and the peer heard us first: it stepped down before
 * its MASTER advert reached us, so all we see is BACKUP. We re-announce
 * anyway, since the LAN learnt its MAC meanwhile; a peer heard all along
 * gets no burst.
 */
static void
test_peer_back_after_silence(void **state)
{
	struct ha ha;
	struct ha_advert b = advert(HASYNC_BACKUP, 100, 1);
	uint64_t now = T0 + 10 * IV, t, end;
	unsigned int acts = 0;

	pair_master(&ha, 150, true);
	run_until(&ha, &now, T0 + 20 * IV);
	acts = ha_rx_advert(&ha, &b, now);	/* first ever: it may have held the VIP */
	assert_true(acts & HA_ACT_GARP_BURST);
	end = now + 10 * IV;
	for (t = now + IV; t < end; t += IV) {	/* heard every interval */
		run_until(&ha, &now, t);
		assert_false(ha_rx_advert(&ha, &b, t) & HA_ACT_GARP_BURST);
	}
	/* Partition: silent for 1 s, then back as BACKUP. */
	run_until(&ha, &now, now + 1000);
	acts = ha_rx_advert(&ha, &b, now);
	assert_int_equal(ha.role, HASYNC_MASTER);
	assert_true(acts & HA_ACT_GARP_BURST);
	assert_int_equal(acts & HA_ACT_ROLE_CHANGED, 0);
	assert_false(ha_rx_advert(&ha, &b, now + IV) & HA_ACT_GARP_BURST);
	/* A silent peer that comes back as the winning MASTER: we step down, no burst. */
	run_until(&ha, &now, now + 1000);
	b = advert(HASYNC_MASTER, 200, 1);
	acts = ha_rx_advert(&ha, &b, now);
	assert_true(acts & HA_ACT_BECOME_BACKUP);
	assert_false(acts & HA_ACT_GARP_BURST);
}

static void
test_split_brain_by_address(void **state)
{
	struct ha ha;
	unsigned int acts;

	/* Equal priority: our address is higher, we stay. */
	acts = split_brain(&ha, PRIO, PRIO, -1);
	assert_int_equal(ha.role, HASYNC_MASTER);
	assert_true(acts & HA_ACT_GARP_BURST);
	/* Equal priority: theirs is higher, we step down. */
	acts = split_brain(&ha, PRIO, PRIO, 1);
	assert_int_equal(ha.role, HASYNC_BACKUP);
	assert_true(acts & HA_ACT_BECOME_BACKUP);
	assert_non_null(strstr(ha.reason, "address"));
}

static void
test_peer_lost(void **state)
{
	struct ha ha;
	struct ha_advert m = advert(HASYNC_MASTER, 200, 1);
	unsigned int acts;

	pair_start(&ha, PRIO, false, NULL);
	ha_rx_advert(&ha, &m, T0 + 10);
	acts = ha_peer_lost(&ha, "sync channel reset", T0 + 11);
	assert_int_equal(ha.role, HASYNC_MASTER);
	assert_true(acts & HA_ACT_BECOME_MASTER);
	assert_non_null(strstr(ha.reason, "sync channel reset"));
	assert_string_equal(ha_peer_state(&ha, T0 + 12), "dead");
	/* It speaks again: alive. A MASTER is not changed by peer_lost. */
	m = advert(HASYNC_BACKUP, 200, 1);
	ha_rx_advert(&ha, &m, T0 + 20);
	assert_string_equal(ha_peer_state(&ha, T0 + 21), "alive");
	assert_int_equal(ha_peer_lost(&ha, "again", T0 + 30), 0);
	assert_int_equal(ha.role, HASYNC_MASTER);
}

static void
test_fault_link_down_and_back(void **state)
{
	struct ha ha;
	struct ha_advert m = advert(HASYNC_MASTER, 200, 1);
	uint64_t now;
	unsigned int acts;

	/* MASTER -> FAULT: VIP removed, adverts go on with priority 0. */
	pair_master(&ha, PRIO, true);
	now = T0 + 10 * IV;
	acts = ha_link_changed(&ha, false, "eth0 down", now);
	assert_int_equal(ha.role, HASYNC_FAULT);
	assert_true(acts & HA_ACT_BECOME_FAULT);
	assert_true(acts & HA_ACT_ADVERT);
	assert_int_equal(ha_advert_priority(&ha), 0);
	assert_string_equal(ha.reason, "eth0 down");
	/* FAULT: no takeover whatever happens, adverts continue. */
	assert_int_equal(ha_link_changed(&ha, false, "again", now), 0);
	assert_int_equal(ha_peer_lost(&ha, "x", now), 0);
	{
		struct ha_advert z = advert(HASYNC_MASTER, 0, 1);

		ha_rx_advert(&ha, &z, now + 1);
	}
	assert_int_equal(ha.role, HASYNC_FAULT);
	acts = run_until(&ha, &now, now + 10 * MD);
	assert_true(acts & HA_ACT_ADVERT);
	assert_int_equal(acts & HA_ACT_ROLE_CHANGED, 0);
	/* Link back: BACKUP, waiting for the MASTER it now hears. */
	acts = ha_link_changed(&ha, true, "eth0 up", now);
	assert_int_equal(ha.role, HASYNC_BACKUP);
	assert_true(acts & HA_ACT_BECOME_BACKUP);
	assert_int_equal(ha_advert_priority(&ha), PRIO);
	ha_rx_advert(&ha, &m, now + 5);
	assert_int_equal(ha.role, HASYNC_BACKUP);

	/* Standalone: FAULT and back to MASTER. */
	{
		struct ha_config c = { .priority = PRIO, .interval_ms = IV };

		ha_init(&ha, &c);
		ha_start(&ha, T0);
		ha_link_changed(&ha, false, "down", T0 + 1);
		assert_int_equal(ha.role, HASYNC_FAULT);
		acts = ha_link_changed(&ha, true, "up", T0 + 2);
		assert_int_equal(ha.role, HASYNC_MASTER);
		assert_true(acts & HA_ACT_GARP_BURST);
	}
	/* Link down before start: start in FAULT. */
	{
		struct ha_config c = { .priority = PRIO, .interval_ms = IV, .has_peer = true };

		ha_init(&ha, &c);
		assert_int_equal(ha_link_changed(&ha, false, "down", T0), 0);
		acts = ha_start(&ha, T0);
		assert_int_equal(ha.role, HASYNC_FAULT);
		assert_true(acts & HA_ACT_BECOME_FAULT);
	}
}

static void
test_failover_then_peer_takes_over(void **state)
{
	struct ha a, b;
	struct ha_advert from_a, from_b;
	const char *why;
	unsigned int acts;
	uint64_t now = T0 + 10 * IV, t;

	/* a (150) is MASTER with preempt, b (100) BACKUP. */
	pair_master(&a, 150, true);
	pair_start(&b, 100, true, NULL);
	from_b = advert(HASYNC_BACKUP, ha_advert_priority(&b), -1);
	ha_rx_advert(&a, &from_b, now);
	from_a = advert(a.role, ha_advert_priority(&a), 1);
	ha_rx_advert(&b, &from_a, now);

	acts = ha_failover(&a, now, &why);
	assert_null(why);
	assert_int_equal(a.role, HASYNC_BACKUP);
	assert_true(acts & HA_ACT_BECOME_BACKUP);
	assert_true(acts & HA_ACT_ADVERT);
	assert_int_equal(ha_advert_priority(&a), 0);

	/* The handover advert says "MASTER, priority 0"; later ones say BACKUP. */
	assert_int_equal(ha_advert_state(&a), HASYNC_MASTER);
	from_a = advert(ha_advert_state(&a), ha_advert_priority(&a), 1);
	assert_int_equal(ha_timeout(&a, a.next_advert_ms), HA_ACT_ADVERT);
	assert_int_equal(ha_advert_state(&a), HASYNC_BACKUP);
	assert_int_equal(ha_advert_priority(&a), 0);

	/* b hears the priority-0 advert and takes over at once. */
	acts = ha_rx_advert(&b, &from_a, now + 1);
	assert_int_equal(b.role, HASYNC_MASTER);
	assert_true(acts & HA_ACT_BECOME_MASTER);

	/* a does not preempt back while b lives, despite preempt and 150 > 100. */
	from_b = advert(HASYNC_MASTER, ha_advert_priority(&b), -1);
	for (t = now + 2; t < now + 5000; t += IV) {
		assert_int_equal(ha_rx_advert(&a, &from_b, t) & HA_ACT_ROLE_CHANGED, 0);
		ha_timeout(&a, t);
	}
	assert_int_equal(a.role, HASYNC_BACKUP);
	/* b dies: a takes over after Master_Down and advertises 150 again. */
	t -= IV;
	ha_timeout(&a, t + ha_master_down_interval(&a) - 1);
	assert_int_equal(a.role, HASYNC_BACKUP);
	ha_timeout(&a, t + ha_master_down_interval(&a));
	assert_int_equal(a.role, HASYNC_MASTER);
	assert_int_equal(ha_advert_priority(&a), 150);
	assert_false(a.yielding);
}

static void
test_failover_handover_lost_and_hand_back(void **state)
{
	struct ha a, b;
	struct ha_advert m, z;
	const char *why;
	uint64_t now = T0 + 10 * IV;

	/* b missed a's "MASTER, priority 0": a's next "BACKUP, 0" still hands over. */
	pair_start(&b, 100, true, NULL);
	z = advert(HASYNC_BACKUP, 0, 1);
	ha_rx_advert(&b, &z, T0 + 5);
	assert_int_equal(b.role, HASYNC_MASTER);
	assert_non_null(strstr(b.reason, "handed over earlier"));

	/*
	 * Hand back: a handed over to b; now b hands back to a. a takes it on
	 * b's "MASTER, 0"; b, having handed over itself, ignores a's stale
	 * "BACKUP, 0" that crossed it on the wire.
	 */
	pair_master(&a, 150, true);
	m = advert(HASYNC_BACKUP, 100, -1);
	ha_rx_advert(&a, &m, now);
	assert_true(ha_failover(&a, now, &why) != 0);
	assert_true(a.yielding);
	pair_master(&b, 100, true);
	m = advert(HASYNC_BACKUP, 0, 1);
	ha_rx_advert(&b, &m, now);
	assert_true(ha_failover(&b, now + 1, &why) != 0);
	assert_int_equal(ha_advert_state(&b), HASYNC_MASTER);
	z = advert(HASYNC_MASTER, 0, -1);
	ha_rx_advert(&a, &z, now + 2);
	assert_int_equal(a.role, HASYNC_MASTER);
	assert_false(a.yielding);
	z = advert(HASYNC_BACKUP, 0, 1);
	assert_int_equal(ha_rx_advert(&b, &z, now + 2), 0);
	assert_int_equal(b.role, HASYNC_BACKUP);
	/* a's MASTER adverts keep b BACKUP although preempt is on. */
	m = advert(HASYNC_MASTER, 150, 1);
	assert_int_equal(ha_rx_advert(&b, &m, now + 3), 0);
	assert_int_equal(b.role, HASYNC_BACKUP);
	/* But a stopping or faulty peer is taken over even while yielding. */
	z = advert(HASYNC_INIT, 0, 1);
	ha_rx_advert(&b, &z, now + 4);
	assert_int_equal(b.role, HASYNC_MASTER);
	assert_non_null(strstr(b.reason, "stopping"));
}

static void
test_failover_refused(void **state)
{
	struct ha ha;
	const char *why;
	struct ha_advert f = advert(HASYNC_FAULT, 0, 1);

	/* BACKUP cannot hand over. */
	pair_start(&ha, PRIO, true, NULL);
	assert_int_equal(ha_failover(&ha, T0, &why), 0);
	assert_non_null(strstr(why, "not MASTER"));
	/* MASTER with a peer never heard, or heard long ago. */
	pair_master(&ha, PRIO, true);
	assert_int_equal(ha_failover(&ha, T0 + 10 * IV, &why), 0);
	assert_non_null(strstr(why, "not alive"));
	{
		struct ha_advert b = advert(HASYNC_BACKUP, 100, 1);

		ha_rx_advert(&ha, &b, T0 + 10 * IV);
	}
	assert_int_equal(ha_failover(&ha, T0 + 10 * IV + MD, &why), 0);
	assert_non_null(strstr(why, "not alive"));
	/* Peer in FAULT. */
	ha_rx_advert(&ha, &f, T0 + 20 * IV);
	assert_int_equal(ha_failover(&ha, T0 + 20 * IV + 1, &why), 0);
	assert_non_null(strstr(why, "FAULT"));
	assert_int_equal(ha.role, HASYNC_MASTER);
}

static void
test_stop(void **state)
{
	struct ha ha;
	unsigned int acts;

	pair_master(&ha, PRIO, true);
	acts = ha_stop(&ha, T0 + 10 * IV);
	assert_int_equal(ha.role, HASYNC_INIT);
	assert_true(acts & HA_ACT_BECOME_INIT);
	assert_true(acts & HA_ACT_ADVERT);
	assert_int_equal(ha_advert_priority(&ha), 0);
	assert_int_equal(ha_next_deadline(&ha), HA_NEVER);
	assert_int_equal(ha_timeout(&ha, T0 + 100 * IV), 0);
	{
		struct ha_advert z = advert(HASYNC_MASTER, 0, 1);

		assert_int_equal(ha_rx_advert(&ha, &z, T0 + 100 * IV), 0);
	}
	assert_int_equal(ha_stop(&ha, T0 + 100 * IV), 0);
	assert_string_equal(ha_role_name(HASYNC_FAULT), "FAULT");
	assert_string_equal(ha_role_name((enum hasync_role)9), "UNKNOWN");
}

static void
test_advert_cadence(void **state)
{
	struct ha ha;
	uint64_t end = T0 + 110 * IV, t;
	int adverts = 0;

	pair_master(&ha, PRIO, true);
	/* Exactly one advert per interval, on time. */
	for (t = ha_next_deadline(&ha); t < end; t = ha_next_deadline(&ha)) {
		assert_int_equal(ha_timeout(&ha, t - 1), 0);
		assert_int_equal(ha_timeout(&ha, t), HA_ACT_ADVERT);
		adverts++;
	}
	assert_int_equal(adverts, 100);
	/* A loop stalled for 10 intervals sends one advert, not ten. */
	t = ha_next_deadline(&ha) + 10 * IV;
	assert_int_equal(ha_timeout(&ha, t), HA_ACT_ADVERT);
	assert_int_equal(ha_next_deadline(&ha), t + IV);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_to_backup),
		cmocka_unit_test(test_standalone_master_at_once),
		cmocka_unit_test(test_master_down_boundary),
		cmocka_unit_test(test_master_down_uses_peer_interval_and_skew),
		cmocka_unit_test(test_backup_stays_while_master_adverts),
		cmocka_unit_test(test_backup_peer_does_not_hold_off),
		cmocka_unit_test(test_master_stays_with_backup_adverts),
		cmocka_unit_test(test_preempt_on),
		cmocka_unit_test(test_preempt_equal_priority_does_not),
		cmocka_unit_test(test_preempt_off),
		cmocka_unit_test(test_preempt_waits_until_heard),
		cmocka_unit_test(test_may_preempt_blocks_until_true),
		cmocka_unit_test(test_priority_zero_immediate),
		cmocka_unit_test(test_split_brain_by_priority),
		cmocka_unit_test(test_split_brain_by_address),
		cmocka_unit_test(test_peer_back_after_silence),
		cmocka_unit_test(test_peer_lost),
		cmocka_unit_test(test_fault_link_down_and_back),
		cmocka_unit_test(test_failover_then_peer_takes_over),
		cmocka_unit_test(test_failover_handover_lost_and_hand_back),
		cmocka_unit_test(test_failover_refused),
		cmocka_unit_test(test_stop),
		cmocka_unit_test(test_advert_cadence),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
