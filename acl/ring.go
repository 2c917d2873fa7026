package acl

// Ringing is one person who rings, on all their registered devices.
type Ringing[D any] struct {
	User    string
	Devices []D
}

// RingPlan is who rings for a call to a number under the default call
// flow: the members in membership order, in batches of at most RingCap
// people who have a registered device; members with none are Skipped.
type RingPlan[D any] struct {
	Batches [][]Ringing[D]
	Skipped []string
}

// WhoRings builds the ring plan of the number from the snapshot and the
// devices each user has registered now (devices returns nil for none).
// ok is false for an unknown number.
func WhoRings[D any](s *Snapshot, e164 string, devices func(user string) []D) (plan RingPlan[D], ok bool) {
	n, ok := s.numbers[e164]
	if !ok {
		return plan, false
	}
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
		people = people[k:]
	}
	return plan, true
}
