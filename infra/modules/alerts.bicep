// Alert rules on what the broker emits to Application Insights (infra/README.md, "Alerts", names each signal's source):
// failed runs, newly opened critical or high hygiene findings, messages moved to a poison queue, and /api/health failing its
// availability test. Every rule notifies the same action groups: the one given, or one created for an email address.

@description('Prefix of the rule names.')
param namePrefix string

@description('Region of the log alert rules and the availability test (that of Application Insights).')
param location string

@description('Resource id of the Application Insights component the broker reports to.')
param applicationInsightsId string

@description('URL of the broker\'s anonymous health route, probed by the availability test.')
param healthUrl string

@description('The queues with triggers; the host moves a message that fails maxDequeueCount times to <queue>-poison.')
param requestsQueue string
param workQueue string

@description('Resource id of an existing action group to notify; empty: one is created when alertEmail is given.')
param actionGroupId string = ''

@description('Email address of the action group created when actionGroupId is empty; both empty: alerts notify no one.')
param alertEmail string = ''

@description('Application Insights availability-test locations (at least the failedLocationCount of the health alert).')
@minLength(2)
param healthTestLocations array

param tags object = {}

resource emailGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (empty(actionGroupId) && !empty(alertEmail)) {
  name: '${namePrefix}-operators'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'broker-ops'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroupIds = empty(actionGroupId) ? (empty(alertEmail) ? [] : [emailGroup.id]) : [actionGroupId]
var metricAlertActions = [for id in actionGroupIds: {
  actionGroupId: id
}]

// shared/telemetry.py: BrokerTelemetry.run_finished counts every run reaching a terminal status, by status.
var failedRunsQuery = '''
customMetrics
| where name == "broker.runs.finished"
| where tostring(customDimensions.status) == "Failed"
| project timestamp, failedRuns = valueSum
'''

// shared/telemetry.py: BrokerTelemetry.findings_changed counts the findings each scan opened and resolved, by rule and
// severity (shared/hygiene/findings.py: Severity). Only newly opened critical and high findings alert; the medium, low
// and info ones are in the workbook.
var openedFindingsQuery = '''
customMetrics
| where name == "broker.hygiene.findings"
| where tostring(customDimensions.change) == "opened"
| where tostring(customDimensions.severity) in ("critical", "high")
| project timestamp, openedFindings = valueSum
'''

// The Functions host logs "Message has reached MaxDequeueCount of 5. Moving message to queue '<queue>-poison'." for a
// message whose function kept failing; the intake copies a malformed request itself and logs "deployment request
// message <id> poisoned: <why>" (shared/deployments/service.py).
var poisonMessagesTemplate = '''
traces
| where message has "Moving message to queue" or (message startswith "deployment request message" and message has " poisoned: ")
| extend queue = iff(message has "Moving message to queue", extract(@"Moving message to queue '([^']+)'", 1, message), "{requestsPoisonQueue}")
| where queue in ("{requestsPoisonQueue}", "{workPoisonQueue}")
| project timestamp, queue
'''
var poisonMessagesQuery = replace(replace(poisonMessagesTemplate, '{requestsPoisonQueue}', '${requestsQueue}-poison'), '{workPoisonQueue}', '${workQueue}-poison')

// Stateless rules evaluated over back-to-back windows: each failed run, opened critical or high finding or poisoned
// message notifies once.
resource failedRuns 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-failed-runs'
  location: location
  tags: tags
  properties: {
    displayName: 'Broker: deployment runs failed'
    description: 'Runs that ended Failed in the last 5 minutes. GET /api/runs?status=Failed lists them with their errors.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: failedRunsQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'failedRuns'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

resource openedFindings 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-findings-opened'
  location: location
  tags: tags
  properties: {
    displayName: 'Broker: critical or high hygiene findings opened'
    description: 'A hygiene scan opened findings of severity critical or high (medium, low and info ones do not alert). GET /api/hygiene/findings?state=open&severity=high (or severity=critical) lists them.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: openedFindingsQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'openedFindings'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

resource poisonMessages 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-poison-messages'
  location: location
  tags: tags
  properties: {
    displayName: 'Broker: messages moved to a poison queue'
    description: 'A request or work message went to its poison queue, one alert per queue. Peek the queue; a work message names its run.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: poisonMessagesQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'queue'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

// GET /api/health answers 503 when a dependency fails or Easy Auth is missing (handlers/health.py); the test expects 200.
resource healthTest 'Microsoft.Insights/webtests@2022-06-15' = {
  name: '${namePrefix}-health'
  location: location
  // Application Insights lists a test as its own only with this tag.
  tags: union(tags, {
    'hidden-link:${applicationInsightsId}': 'Resource'
  })
  kind: 'standard'
  properties: {
    SyntheticMonitorId: '${namePrefix}-health'
    Name: 'Broker /api/health'
    Description: 'GET /api/health every 5 minutes; anything but 200 (degraded: 503) fails.'
    Enabled: true
    Kind: 'standard'
    Frequency: 300
    Timeout: 30
    RetryEnabled: true
    Locations: [for locationId in healthTestLocations: {
      Id: locationId
    }]
    Request: {
      RequestUrl: healthUrl
      HttpVerb: 'GET'
      ParseDependentRequests: false
    }
    ValidationRules: {
      ExpectedHttpStatusCode: 200
      SSLCheck: true
      SSLCertRemainingLifetimeCheck: 7
    }
  }
}

resource healthDegraded 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-health-degraded'
  location: 'global'
  tags: tags
  properties: {
    description: 'GET /api/health failed (degraded or unreachable) from at least 2 locations. Its body names the failing dependency.'
    severity: 1
    enabled: true
    scopes: [
      healthTest.id
      applicationInsightsId
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.WebtestLocationAvailabilityCriteria'
      webTestId: healthTest.id
      componentId: applicationInsightsId
      failedLocationCount: 2
    }
    actions: metricAlertActions
  }
}

output actionGroupIds array = actionGroupIds
