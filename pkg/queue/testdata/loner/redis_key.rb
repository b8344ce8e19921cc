# resque-loner's redis_key (lib/resque-loner/unique_job.rb), with the
# json gem standing in for MultiJson, as it does when json is its engine.
require 'json'
require 'digest/md5'
STDIN.each_line do |l|
  payload = JSON.parse(l)
  job = payload['class']
  args = payload['args']
  args.map! { |arg| arg.is_a?(Hash) ? arg.sort : arg }
  puts Digest::MD5.hexdigest(JSON.generate(class: job, args: args))
end
