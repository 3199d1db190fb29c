package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/graft-registry/graft/internal/client"
)

// lockCommand is graft lock, or graft unlock when unlock is set: the changeable
// attributes of graft's metadata API, as verbs.
func lockCommand(g *clientFlags, unlock bool) *cobra.Command {
	var (
		ops    client.Operations
		format formatFlag
	)
	verb, refuse := "lock", "refuse"
	if unlock {
		verb, refuse = "unlock", "allow again"
	}
	cmd := &cobra.Command{
		Use:   verb + " HOST/REPOSITORY[:TAG|@DIGEST] [--write] [--delete] [--read] [--list]",
		Short: strings.ToUpper(refuse[:1]) + refuse[1:] + " writes, deletes, reads or listings of a repository or manifest (graft)",
		Long: strings.ToUpper(refuse[:1]) + refuse[1:] + ` the operations the flags name (all four without a flag) on a
repository or, with a tag or digest, on one manifest of it: --write pushes and tag
moves (and, as in ACR, deletes), --delete deletes, --read pulls, --list listings
(the catalog for a repository, the tag list for a manifest's tags). A refused
operation is answered 403 DENIED, exit code 4. graft unlock allows them again.

Locks are graft's changeable attributes (PATCH /graft/v1/<name>, and
/graft/v1/<name>/_manifests/<reference>): another registry has no such API, and graft
says so. Changing one needs the delete right on the repository.`,
		Example: `  graft lock localhost:5000/demo/app:v1 --write --delete
  graft unlock localhost:5000/demo/app`,
		Args: args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, err := client.ParseReference(a[0])
			if err != nil {
				return err
			}
			repo, err := g.options(cmd).Repository(ref)
			if err != nil {
				return err
			}
			if ops == (client.Operations{}) {
				ops = client.Operations{Write: true, Delete: true, Read: true, List: true}
			}
			set := client.Lock
			if unlock {
				set = client.Unlock
			}
			locked, err := set(ctx, repo, ref, ops)
			if err != nil {
				return err
			}
			done := "Locked"
			if unlock {
				done = "Unlocked"
			}
			g.status(cmd, "%s %s: %s", done, locked.Reference, lockState(locked.Attributes))
			if format.JSON() {
				return client.WriteJSON(cmd.OutOrStdout(), locked)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&ops.Write, "write", false, refuse+" pushes and tag moves (and deletes)")
	f.BoolVar(&ops.Delete, "delete", false, refuse+" deletes")
	f.BoolVar(&ops.Read, "read", false, refuse+" pulls")
	f.BoolVar(&ops.List, "list", false, refuse+" listings: the catalog, or the tag list")
	format.add(cmd, "output `format`: text (a status line on stderr only) or json", formatText, formatJSON)
	return cmd
}

// lockState says what attributes refuse and allow: "refuses write and delete; allows
// read and list".
func lockState(a client.Attributes) string {
	var refused, allowed []string
	for _, op := range []struct {
		name    string
		enabled bool
	}{{"write", a.WriteEnabled}, {"delete", a.DeleteEnabled}, {"read", a.ReadEnabled}, {"list", a.ListEnabled}} {
		if op.enabled {
			allowed = append(allowed, op.name)
		} else {
			refused = append(refused, op.name)
		}
	}
	switch {
	case len(refused) == 0:
		return "allows everything"
	case len(allowed) == 0:
		return "refuses write, delete, read and list"
	}
	return "refuses " + wordList(refused, "and") + "; allows " + wordList(allowed, "and")
}
