package acl

// Ringing is one person who rings, on all their registered devices.
type Ringing[D any] struct {
	User    string
	Devices []D
}

// RingPlan is who rings for a call to a number, step by step. Under the
// default call flow the members ring in membership order, in batches of at
// most RingCap people who have a registered device; a custom flow gives the
// steps. Members with no device are Skipped; Then says what follows the
// last step (ThenVoicemail or ThenHangup).
type RingPlan[D any] struct {
	Batches [][]Ringing[D]
	Seconds []int // ring time of each batch
	Skipped []string
	Then    string
	Custom  bool // the number's own flow, not the default
	// DeclinePersonal: a decline stops only that person's phones (see
	// Number.Decline); false: it ends the call.
	DeclinePersonal bool
}

// WhoRings builds the ring plan of the number from the snapshot and the
// devices each user has registered now (devices returns nil for none).
// ok is false for an unknown number.
func WhoRings[D any](s *Snapshot, e164 string, devices func(user string) []D) (plan RingPlan[D], ok bool) {
	n, ok := s.numbers[e164]
	if !ok {
		return plan, false
	}
	plan.Then = ThenVoicemail
	if n.Flow != nil {
		plan = customPlan(n, devices)
		plan.DeclinePersonal = n.Decline == DeclinePersonal
		return plan, true
	}
	plan.DeclinePersonal = n.Decline == DeclinePersonal
	people := make([]Ringing[D], 0, len(n.Members))
	for i := range n.Members {
		user := n.Members[i].User
		devs := devices(user)
		if len(devs) == 0 {
			plan.Skipped = append(plan.Skipped, user)
			continue
		}
		people = append(people, Ringing[D]{User: user, Devices: devs})
	}
	for len(people) > 0 {
		k := min(len(people), RingCap)
		plan.Batches = append(plan.Batches, people[:k:k])
		plan.Seconds = append(plan.Seconds, DefaultRingSeconds)
		people = people[k:]
	}
	return plan, true
}

// customPlan follows the number's flow; users no longer members are left
// out, and a step whose people have no device is dropped.
func customPlan[D any](n *Number, devices func(user string) []D) (plan RingPlan[D]) {
	plan.Then, plan.Custom = n.Flow.Then, true
	skipped := map[string]bool{}
	for _, st := range n.Flow.Steps {
		var batch []Ringing[D]
		for _, user := range st.Users {
			if n.Role(user) == RoleNone {
				continue
			}
			devs := devices(user)
			if len(devs) == 0 {
				if !skipped[user] {
					skipped[user] = true
					plan.Skipped = append(plan.Skipped, user)
				}
				continue
			}
			batch = append(batch, Ringing[D]{User: user, Devices: devs})
		}
		if len(batch) > 0 {
			plan.Batches = append(plan.Batches, batch)
			plan.Seconds = append(plan.Seconds, st.Seconds)
		}
	}
	return plan
}
