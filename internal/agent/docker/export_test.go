package docker

// TranslateRunArgs translates a rendered `docker run` argument list (Kamal's
// own line) the way Translate translates a spec: its flags through Apply,
// its image and command, then the agent's own mapping (localize). The
// parity tests compare the two.
func (r *Runtime) TranslateRunArgs(args []string) (*Spec, error) {
	flags, image, cmd, err := ParseRunArgs(args)
	if err != nil {
		return nil, err
	}
	s, err := Apply(flags)
	if err != nil {
		return nil, err
	}
	s.Config.Image = image
	if len(cmd) > 0 {
		s.Config.Cmd = cmd
	}
	r.localize(s)
	return s, nil
}
