package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/server"
)

type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name   string `yaml:"name"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
						Items      []struct {
							Key  string `yaml:"key"`
							Path string `yaml:"path"`
						} `yaml:"items"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// a Service's
		Ports []struct {
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
}

// settingVariables are the GRAFT_* variables graft reads, one per setting.
func settingVariables() map[string]bool {
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	config.AddFlags(fs)
	vars := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) {
		vars["GRAFT_"+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))] = true
	})
	return vars
}

// The scale-out manifests: three replicas of graft on S3 and PostgreSQL, each setting
// from a variable graft reads, the credentials from the Secret's keys, probes on the
// health endpoints, the Service on the container's port.
func TestKubernetesManifests(t *testing.T) {
	b, err := os.ReadFile("kubernetes/graft.yaml")
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string]object{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("kubernetes/graft.yaml: %v", err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("an object without apiVersion, kind or name: %+v", o)
		}
		byKind[o.Kind] = o
	}
	for _, k := range []string{"Secret", "Deployment", "Service"} {
		if _, ok := byKind[k]; !ok {
			t.Fatalf("no %s", k)
		}
	}
	secret, dep, svc := byKind["Secret"], byKind["Deployment"], byKind["Service"]

	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", dep.Spec.Replicas)
	}
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("the selector's %s=%s is not a label of the pods", k, v)
		}
	}
	if !dep.Spec.Template.Spec.SecurityContext.RunAsNonRoot {
		t.Error("the pods may run as root")
	}
	cs := dep.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers, want graft alone", len(cs))
	}
	c := cs[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Errorf("the container runs %q, want graft serve", c.Args)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 5000 {
		t.Fatalf("container ports %+v, want 5000", c.Ports)
	}
	port := c.Ports[0].Name
	for name, p := range map[string]*probe{server.ReadyPath: c.ReadinessProbe, server.HealthPath: c.LivenessProbe} {
		if p == nil || p.HTTPGet.Path != name || p.HTTPGet.Port != port {
			t.Errorf("the probe of %s: %+v, want GET %s on port %s", name, p, name, port)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != port {
		t.Errorf("the Service's ports %+v, want the container's port %s", svc.Spec.Ports, port)
	}

	// Every variable is a setting; the secret ones name keys of the Secret; the
	// scale-out's settings are all there.
	vars := settingVariables()
	env := map[string]string{}
	for _, e := range c.Env {
		if !vars[e.Name] {
			t.Errorf("%s is no setting graft reads", e.Name)
		}
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name != secret.Metadata.Name {
				t.Errorf("%s comes from Secret %s, not %s", e.Name, ref.Name, secret.Metadata.Name)
			}
			if _, ok := secret.StringData[ref.Key]; !ok {
				t.Errorf("%s comes from key %s, which the Secret does not have", e.Name, ref.Key)
			}
			env[e.Name] = "secret"
		}
	}
	for _, name := range []string{"GRAFT_METADATA_POSTGRES_URL", "GRAFT_STORAGE_S3_BUCKET", "GRAFT_STORAGE_S3_ACCESS_KEY",
		"GRAFT_STORAGE_S3_SECRET_KEY", "GRAFT_AUTH_TOKEN_KEY", "GRAFT_AUTH_HTPASSWD"} {
		if env[name] == "" {
			t.Errorf("%s is not set: the replicas need it", name)
		}
	}
	// The files graft reads are keys of the Secret, mounted where the settings say.
	files := map[string]string{} // path in the container → key of the Secret
	for _, m := range c.VolumeMounts {
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			if v.Secret.SecretName != secret.Metadata.Name {
				t.Errorf("volume %s mounts Secret %s", v.Name, v.Secret.SecretName)
			}
			for _, it := range v.Secret.Items {
				files[path.Join(m.MountPath, it.Path)] = it.Key
			}
		}
	}
	for _, name := range []string{"GRAFT_AUTH_TOKEN_KEY", "GRAFT_AUTH_HTPASSWD"} {
		key, ok := files[env[name]]
		if !ok {
			t.Errorf("%s is %s, which no Secret volume provides", name, env[name])
			continue
		}
		if _, ok := secret.StringData[key]; !ok {
			t.Errorf("%s is the Secret's key %s, which it does not have", name, key)
		}
	}
}
