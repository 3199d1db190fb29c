package s3_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore/s3"
)

// The benchmarks push the same 256 MiB three ways, with the default part size, so that
// what the store adds to a plain multipart upload (hashing, the session state, and for
// an upload session the commit's pointer) shows as a ratio.
const benchSize = 256 * mib

// BenchmarkPlainMultipart is the baseline: the S3 client alone, one part after another,
// as the store sends them, in parts of the default size and, to compare with chunked
// appends, of 8 MiB.
func BenchmarkPlainMultipart(b *testing.B) {
	for _, partSize := range []int{s3.DefaultPartSize, 8 * mib} {
		b.Run(fmt.Sprintf("part=%dMiB", partSize/mib), func(b *testing.B) { plainMultipart(b, partSize) })
	}
}

func plainMultipart(b *testing.B, partSize int) {
	o := options(b, 0)
	s := open(b, o)
	c := s3.Client(s)
	data := content(9, benchSize)
	ctx := b.Context()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := range b.N {
		key := aws.String(fmt.Sprintf("%splain/%d", o.Prefix, i))
		up, err := c.CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{Bucket: &o.Bucket, Key: key})
		if err != nil {
			b.Fatal(err)
		}
		var parts []types.CompletedPart
		for n, off := int32(1), 0; off < benchSize; n, off = n+1, off+partSize {
			p := data[off:min(off+partSize, benchSize)]
			out, err := c.UploadPart(ctx, &s3api.UploadPartInput{
				Bucket: &o.Bucket, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(n),
				Body: bytes.NewReader(p), ContentLength: aws.Int64(int64(len(p))),
			})
			if err != nil {
				b.Fatal(err)
			}
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag})
		}
		_, err = c.CompleteMultipartUpload(ctx, &s3api.CompleteMultipartUploadInput{
			Bucket: &o.Bucket, Key: key, UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := c.DeleteObject(ctx, &s3api.DeleteObjectInput{Bucket: &o.Bucket, Key: key}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N)*benchSize/mib/b.Elapsed().Seconds(), "MiB/s")
}

// BenchmarkUpload pushes through an upload session: the whole blob in one Append (one
// PATCH), or in 8 MiB Appends (chunked PATCHes, half a part each), then Commit.
func BenchmarkUpload(b *testing.B) {
	for _, chunk := range []int{benchSize, 8 * mib} {
		name := "stream"
		if chunk < benchSize {
			name = fmt.Sprintf("chunks=%dMiB", chunk/mib)
		}
		b.Run(name, func(b *testing.B) {
			o := options(b, 0)
			s := open(b, o)
			data := content(9, benchSize)
			d := digest.FromBytes(data)
			ctx := b.Context()
			var appending, committing time.Duration
			b.SetBytes(benchSize)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				u, err := s.NewUpload(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < benchSize; off += chunk {
					if _, err := u.Append(ctx, bytes.NewReader(data[off:off+chunk])); err != nil {
						b.Fatal(err)
					}
				}
				appended := time.Now()
				if _, err := u.Commit(ctx, d); err != nil {
					b.Fatal(err)
				}
				appending += appended.Sub(start)
				committing += time.Since(appended)
				b.StopTimer()
				if err := s.Delete(ctx, d); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N)*benchSize/mib/b.Elapsed().Seconds(), "MiB/s")
			// The appends alone, and the commit (its complete and pointer).
			b.ReportMetric(float64(b.N)*benchSize/mib/appending.Seconds(), "append-MiB/s")
			b.ReportMetric(committing.Seconds()/float64(b.N), "commit-s/op")
		})
	}
}

// BenchmarkPut pushes with Put, a monolithic upload whose digest is known.
func BenchmarkPut(b *testing.B) {
	o := options(b, 0)
	s := open(b, o)
	data := content(9, benchSize)
	d := digest.FromBytes(data)
	ctx := b.Context()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		if _, err := s.Put(ctx, d, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Delete(ctx, d); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N)*benchSize/mib/b.Elapsed().Seconds(), "MiB/s")
}
